import Crypto
import Foundation
import PeerNet

/// The keys of memberlist's optional encryption (serf's `-encrypt`, Consul's gossip key):
/// AES-GCM with 16-, 24- or 32-byte keys. The first key encrypts; every key is tried to decrypt,
/// so a cluster can rotate keys.
public struct MemberlistKeyring: Sendable {
    public private(set) var keys: [SymmetricKey]

    public init(keys: [[UInt8]]) throws(MemberlistError) {
        guard !keys.isEmpty else { throw .decryption("the keyring is empty") }
        for key in keys where ![16, 24, 32].contains(key.count) {
            throw .decryption("a key of \(key.count) bytes (16, 24 or 32 expected)")
        }
        self.keys = keys.map { SymmetricKey(data: $0) }
    }

    /// A base64 key as serf's `-encrypt` and `serf keygen` write it.
    public init(base64: String) throws(MemberlistError) {
        guard let data = Data(base64Encoded: base64) else { throw .decryption("the key is not base64") }
        try self.init(keys: [Array(data)])
    }

    static let nonceSize = 12
    static let tagSize = 16

    /// Encryption version 1 (no padding; memberlist protocol 2 and later, what serf sends):
    /// version byte, 12-byte random nonce, ciphertext and tag; `data` is authenticated.
    public func encrypt(_ message: [UInt8], authenticating data: [UInt8]) throws(MemberlistError) -> [UInt8] {
        let nonce = AES.GCM.Nonce()
        guard let sealed = try? AES.GCM.seal(message, using: keys[0], nonce: nonce, authenticating: data)
        else {
            throw .decryption("AES-GCM refused to seal")
        }
        var out: [UInt8] = [1]
        out.append(contentsOf: nonce)
        out.append(contentsOf: sealed.ciphertext)
        out.append(contentsOf: sealed.tag)
        return out
    }

    /// Opens a version 0 (PKCS#7 padded) or 1 payload with any key of the ring.
    public func decrypt(_ payload: [UInt8], authenticating data: [UInt8]) throws(MemberlistError) -> [UInt8] {
        guard payload.count >= 1 + Self.nonceSize + Self.tagSize else {
            throw .decryption("\(payload.count) bytes is too short")
        }
        let version = payload[0]
        guard version <= 1 else { throw .decryption("unknown encryption version \(version)") }
        let nonceBytes = payload[1...Self.nonceSize]
        let body = payload[(1 + Self.nonceSize)...]
        guard let nonce = try? AES.GCM.Nonce(data: nonceBytes),
            let box = try? AES.GCM.SealedBox(
                nonce: nonce, ciphertext: body.dropLast(Self.tagSize), tag: body.suffix(Self.tagSize))
        else { throw .decryption("malformed sealed box") }
        for key in keys {
            guard let plain = try? AES.GCM.open(box, using: key, authenticating: data) else { continue }
            var message = Array(plain)
            if version == 0 {
                guard let pad = message.last, pad >= 1, pad <= 16, Int(pad) <= message.count else {
                    throw .decryption("bad PKCS#7 padding")
                }
                message.removeLast(Int(pad))
            }
            return message
        }
        throw .decryption("no key of the keyring opens it")
    }
}

/// How this member frames what it sends (memberlist `rawSendMsgPacket`).
public struct MemberlistFraming: Sendable {
    /// LZW-compress a packet when that makes it smaller (serf: on by default).
    public var compression = true
    /// Prepend a CRC-32 (`hasCrcMsg`) for receivers of protocol 5 and later.
    public var checksum = true
    public var keyring: MemberlistKeyring?
    public var limits = MemberlistLimits()

    public init(compression: Bool = true, checksum: Bool = true, keyring: MemberlistKeyring? = nil) {
        self.compression = compression
        self.checksum = checksum
        self.keyring = keyring
    }

    /// Nested compound and compressed wrappers accepted (memberlist nests them once).
    static let maxNesting = 4

    // MARK: Packets

    /// One packet from messages: a compound when there are several (at most 255, each under
    /// 64 KiB), then compression, CRC and encryption as configured. `checksum` is per receiver.
    public func packet(_ messages: [[UInt8]], checksum withCRC: Bool? = nil) throws(MemberlistError)
        -> [UInt8]
    {
        var body = messages.count == 1 ? messages[0] : Self.compound(messages)
        if compression {
            let compressed = Self.compress(body)
            if compressed.count < body.count { body = compressed }
        }
        if withCRC ?? checksum {
            var framed: [UInt8] = [MemberlistMessageType.hasCRC.rawValue]
            let crc = Zlib.crc32(body)
            framed.append(contentsOf: [
                UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF),
            ])
            framed.append(contentsOf: body)
            body = framed
        }
        if let keyring { body = try keyring.encrypt(body, authenticating: []) }
        return body
    }

    /// `compoundMsg`: count, each length as a big-endian UInt16, then the messages.
    public static func compound(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = [MemberlistMessageType.compound.rawValue, UInt8(messages.count)]
        for message in messages {
            out.append(contentsOf: [UInt8(message.count >> 8), UInt8(message.count & 0xFF)])
        }
        for message in messages { out.append(contentsOf: message) }
        return out
    }

    /// `compressMsg`: the msgpack struct `{Algo: 0 (LZW), Buf}` after the type byte.
    public static func compress(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [MemberlistMessageType.compress.rawValue]
        MessagePack.append(
            MessagePack.structure([("Algo", .int(0)), ("Buf", .bytes(LZW.compress(body)))]), to: &out)
        return out
    }

    /// Every message a packet carries, in order. A bad part of a compound is reported in place
    /// (as memberlist logs and skips it); the packet's other messages are kept.
    public func messages(inPacket packet: [UInt8]) throws(MemberlistError) -> [Result<
        MemberlistMessage, MemberlistError
    >] {
        guard packet.count <= limits.packetSize else {
            throw .tooLarge("packet", packet.count, limit: limits.packetSize)
        }
        var body = packet
        if body.first == MemberlistMessageType.hasLabel.rawValue { throw .label }
        if let keyring {
            body = try keyring.decrypt(body, authenticating: [])
        }
        if body.count >= 5, body[0] == MemberlistMessageType.hasCRC.rawValue {
            let expected =
                UInt32(body[1]) << 24 | UInt32(body[2]) << 16 | UInt32(body[3]) << 8 | UInt32(body[4])
            let computed = Zlib.crc32(body[5...])
            guard expected == computed else { throw .badCRC(expected: expected, computed: computed) }
            body = Array(body[5...])
        }
        var out: [Result<MemberlistMessage, MemberlistError>] = []
        try unwrap(body, depth: 0, into: &out)
        // A packet that is one bad message is a bad packet.
        if out.count == 1, case .failure(let error) = out[0] { throw error }
        return out
    }

    private func unwrap(
        _ body: [UInt8], depth: Int, into out: inout [Result<MemberlistMessage, MemberlistError>]
    ) throws(MemberlistError) {
        guard depth <= Self.maxNesting else { throw .nesting }
        guard let first = body.first else { throw .empty }
        switch MemberlistMessageType(rawValue: first) {
        case .compound:
            guard body.count >= 2 else { throw .compound("no count") }
            let count = Int(body[1])
            guard body.count >= 2 + 2 * count else {
                throw .compound("\(count) lengths announced, \(body.count - 2) bytes follow")
            }
            var offset = 2 + 2 * count
            for index in 0..<count {
                let length = Int(body[2 + 2 * index]) << 8 | Int(body[3 + 2 * index])
                guard body.count - offset >= length else {
                    out.append(.failure(.compound("part \(index) of \(length) bytes is truncated")))
                    return
                }
                let part = Array(body[offset..<offset + length])
                offset += length
                do throws(MemberlistError) {
                    try unwrap(part, depth: depth + 1, into: &out)
                } catch {
                    out.append(.failure(error))
                }
            }
        case .compress:
            try unwrap(try decompress(body, limit: limits.packetSize), depth: depth + 1, into: &out)
        case .pushPull:
            out.append(.failure(.unexpected(.pushPull, where: "packet")))
        default:
            out.append(
                Result { () throws(MemberlistError) in try MemberlistCodec.decode(body, limits: limits) })
        }
    }

    /// Undoes a `compressMsg` (whose first byte is the type): the inner bytes.
    func decompress(_ body: [UInt8], limit: Int) throws(MemberlistError) -> [UInt8] {
        let value: MessagePackValue
        do {
            value = try MessagePack.decode(body, at: 1, maxLength: limits.streamSize).value
        } catch {
            throw .messagePack(.compress, error)
        }
        let fields = MemberlistCodec.Fields(type: .compress, value: value, limits: limits)
        let algorithm = try fields.int("Algo")
        guard algorithm == 0 else { throw .compression("unknown algorithm \(algorithm)") }
        let compressed = try fields.bytes("Buf")
        do throws(LZW.Failure) {
            return try LZW.decompress(compressed, limit: limit)
        } catch {
            throw .compression(error.description)
        }
    }

    // MARK: Streams

    /// What a stream carries after its framing is undone.
    public enum StreamResult: Sendable, Hashable {
        case message(MemberlistMessage, consumed: Int)
        case needMore
    }

    /// One message from the start of a TCP stream (memberlist `readStream`): optionally
    /// encrypted (type, 4-byte length, sealed payload; the 5 header bytes authenticated), then
    /// optionally compressed, then a push-pull, ping or user message.
    public func streamMessage(_ buffer: [UInt8]) throws(MemberlistError) -> StreamResult {
        var progress = MemberlistCodec.PushPullProgress()
        return try streamMessage(buffer, progress: &progress)
    }

    /// As ``streamMessage(_:)`` on a growing buffer, resuming a plain push-pull from `progress`.
    public func streamMessage(
        _ buffer: [UInt8], progress: inout MemberlistCodec.PushPullProgress
    ) throws(MemberlistError) -> StreamResult {
        guard let first = buffer.first else { return .needMore }
        guard buffer.count <= limits.streamSize + 5 else {
            throw .tooLarge("stream", buffer.count, limit: limits.streamSize)
        }
        switch MemberlistMessageType(rawValue: first) {
        case .hasLabel:
            throw .label
        case .encrypt:
            guard buffer.count >= 5 else { return .needMore }
            let length = Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
            guard length <= limits.streamSize else {
                throw .tooLarge("encrypted stream", length, limit: limits.streamSize)
            }
            guard buffer.count >= 5 + length else { return .needMore }
            guard let keyring else { throw .decryption("an encrypted stream, and this member has no key") }
            let plain = try keyring.decrypt(
                Array(buffer[5..<5 + length]), authenticating: Array(buffer[0..<5]))
            guard case .message(let message, _) = try inner(plain, complete: true) else {
                throw .decryption("the decrypted stream message is incomplete")
            }
            return .message(message, consumed: 5 + length)
        default:
            guard keyring == nil else {
                throw .decryption("encryption is on, and the stream is not encrypted")
            }
            return try inner(buffer, complete: false, progress: &progress)
        }
    }

    private func inner(_ buffer: [UInt8], complete: Bool) throws(MemberlistError) -> StreamResult {
        var progress = MemberlistCodec.PushPullProgress()
        return try inner(buffer, complete: complete, progress: &progress)
    }

    private func inner(
        _ buffer: [UInt8], complete: Bool, progress: inout MemberlistCodec.PushPullProgress
    ) throws(MemberlistError) -> StreamResult {
        guard let first = buffer.first else { throw .empty }
        if first == MemberlistMessageType.compress.rawValue {
            // One msgpack value, `{Algo, Buf}`: a fixmap of a few fields, so that re-reading a
            // growing buffer stays cheap; wait until it is whole.
            if buffer.count >= 2, !(0x80...0x84).contains(buffer[1]) {
                throw .compression("the header is not a small map")
            }
            let end: Int
            do {
                end = try MessagePack.decode(buffer, at: 1, maxLength: limits.streamSize).end
            } catch {
                if case .truncated = error, !complete { return .needMore }
                throw .messagePack(.compress, error)
            }
            let plain = try decompress(Array(buffer[..<end]), limit: limits.streamSize)
            guard case .message(let message, _) = try inner(plain, complete: true) else {
                throw .compression("the decompressed stream message is incomplete")
            }
            return .message(message, consumed: end)
        }
        if first == MemberlistMessageType.pushPull.rawValue {
            switch try MemberlistCodec.decodePushPull(buffer, limits: limits, progress: &progress) {
            case .complete(let pushPull, let consumed):
                return .message(.pushPull(pushPull), consumed: consumed)
            case .needMore:
                if complete { throw .messagePack(.pushPull, .truncated(offset: buffer.count)) }
                return .needMore
            }
        }
        guard let type = MemberlistMessageType(rawValue: first) else { throw .unknownType(first) }
        guard [.ping, .user, .error, .ack].contains(type) else { throw .unexpected(type, where: "stream") }
        guard buffer.count <= limits.packetSize else {
            throw .tooLarge("\(type) on a stream", buffer.count, limit: limits.packetSize)
        }
        if type == .user {
            // A user message on a stream carries a length header; serf's are not used here.
            throw .unexpected(.user, where: "stream")
        }
        do {
            let end = try MessagePack.decode(buffer, at: 1, maxLength: limits.streamSize).end
            return .message(try MemberlistCodec.decode(Array(buffer[..<end]), limits: limits), consumed: end)
        } catch let error as MessagePackError {
            if case .truncated = error, !complete { return .needMore }
            throw .messagePack(type, error)
        } catch let error as MemberlistError {
            throw error
        } catch {
            throw .empty
        }
    }

    /// A stream message as this member writes it: compressed and encrypted as configured.
    public func stream(_ message: [UInt8]) throws(MemberlistError) -> [UInt8] {
        var body = message
        if compression { body = Self.compress(body) }
        guard let keyring else { return body }
        let sealedLength = 1 + MemberlistKeyring.nonceSize + body.count + MemberlistKeyring.tagSize
        var header: [UInt8] = [MemberlistMessageType.encrypt.rawValue]
        header.append(contentsOf: [
            UInt8(sealedLength >> 24 & 0xFF), UInt8(sealedLength >> 16 & 0xFF),
            UInt8(sealedLength >> 8 & 0xFF), UInt8(sealedLength & 0xFF),
        ])
        return header + (try keyring.encrypt(body, authenticating: header))
    }
}
