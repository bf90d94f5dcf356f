import Foundation
import NIOCore
import PeerCrypto

/// libp2p's Noise transport framing (noise spec, "Wire Format"): every message, handshake or
/// transport, is a 2-byte big-endian length and that many bytes; a transport message is one
/// ChaCha20-Poly1305 ciphertext of at most 65,535 bytes (65,519 of plaintext). Sans I/O.
public struct NoiseFrameReader: Sendable {
    var queue = ByteQueue()

    public init() {}

    /// Bytes buffered and not yet returned as a frame (at most one frame and its prefix).
    public var buffered: Int { queue.count }

    /// Adds bytes read from the connection.
    public mutating func feed(_ bytes: some Collection<UInt8>) { queue.append(bytes) }

    /// The next whole frame's body, or nil until it has all come. Lengths are 16 bits, so a
    /// frame is bounded by construction (65,537 bytes with its prefix).
    public mutating func next() -> ArraySlice<UInt8>? {
        guard queue.count >= 2 else { return nil }
        let length = Int(queue[0]) << 8 | Int(queue[1])
        guard queue.count >= 2 + length else { return nil }
        return queue.take(length, after: 2)
    }

    /// What is left after the last whole frame (handed on when the framing changes).
    public var remainder: [UInt8] { queue.remaining }

    /// `body` with its 2-byte length prefix (at most 65,535 bytes).
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        precondition(body.count <= NoiseCipherState.maxMessage, "a Noise message is at most 65,535 bytes")
        return [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }
}

/// The secure channel after a Noise handshake: plaintext in, framed ciphertext out, and the
/// other way. A message that fails to authenticate, or a nonce that runs out, ends the
/// connection (the caller closes it on any error).
public struct NoiseTransport: Sendable {
    var sender: NoiseCipherState
    var receiver: NoiseCipherState
    var reader: NoiseFrameReader

    /// Plaintext bytes per transport message: 65,535 less the 16-byte tag.
    public static let maxPlaintext = NoiseCipherState.maxMessage - NoiseCipherState.tagLength

    /// `pending` holds bytes that arrived after the handshake's last message.
    public init(send: NoiseCipherState, receive: NoiseCipherState, pending: [UInt8] = []) {
        sender = send
        receiver = receive
        reader = NoiseFrameReader()
        reader.feed(pending)
    }

    /// Encrypts `plaintext` into as many framed messages as it needs.
    public mutating func seal(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: Self.sealedSize(plaintext.count))
        try seal(plaintext[...], into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Bytes that sealing `count` plaintext bytes writes: a 2-byte length and a 16-byte tag a
    /// message.
    public static func sealedSize(_ count: Int) -> Int {
        count + (count + maxPlaintext - 1) / maxPlaintext * (2 + NoiseCipherState.tagLength)
    }

    /// Encrypts `plaintext` into framed messages written at the end of `buffer` (the driver's
    /// path: one copy from swift-crypto's output into the socket's buffer).
    public mutating func seal(_ plaintext: ArraySlice<UInt8>, into buffer: inout ByteBuffer)
        throws(NoiseError)
    {
        buffer.reserveCapacity(minimumWritableBytes: Self.sealedSize(plaintext.count))
        var start = plaintext.startIndex
        while start < plaintext.endIndex {
            let end = min(start + Self.maxPlaintext, plaintext.endIndex)
            var cipher = sender
            let sealed = plaintext[start..<end].withUnsafeBytes { bytes in
                Result { () throws(NoiseError) in try cipher.seal(bytes) }
            }
            sender = cipher
            let (ciphertext, tag) = try sealed.get()
            buffer.writeInteger(UInt16(ciphertext.count + tag.count))
            ciphertext.withUnsafeBytes { _ = buffer.writeBytes($0) }
            tag.withUnsafeBytes { _ = buffer.writeBytes($0) }
            start = end
        }
    }

    /// Adds ciphertext from the connection; returns the plaintext of every whole message.
    public mutating func open(_ bytes: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        var out: [UInt8] = []
        try open(bytes, appendingTo: &out)
        return out
    }

    /// Adds ciphertext from the connection and appends the plaintext of every whole message to
    /// `out`.
    public mutating func open(_ bytes: some Collection<UInt8>, appendingTo out: inout [UInt8])
        throws(NoiseError)
    {
        reader.feed(bytes)
        try drain(appendingTo: &out)
    }

    /// The plaintext of the whole messages already buffered.
    public mutating func drain() throws(NoiseError) -> [UInt8] {
        var out: [UInt8] = []
        try drain(appendingTo: &out)
        return out
    }

    /// Appends the plaintext of the whole messages already buffered to `out`.
    public mutating func drain(appendingTo out: inout [UInt8]) throws(NoiseError) {
        while let frame = reader.next() {
            let plaintext = try receiver.open(frame)
            plaintext.withUnsafeBytes { out.append(contentsOf: $0) }
        }
    }
}
