/// The ways MSE may carry the stream after its handshake (`crypto_provide` / `crypto_select`).
public struct MSEMethods: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Only the handshake is encrypted; the stream after it is plaintext.
    public static let plaintext = MSEMethods(rawValue: 0x01)
    /// The whole stream is RC4-encrypted.
    public static let rc4 = MSEMethods(rawValue: 0x02)
}

/// Why an MSE handshake failed.
public enum MSEError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The other side's Diffie-Hellman key is degenerate or out of range.
    case badPublicKey
    /// The synchronisation marker did not come within the padding allowed (`what`: which).
    case noSync(String)
    /// The responder serves no torrent whose `req2` hash the initiator sent.
    case unknownTorrent
    /// The verification constant did not decrypt to zeros.
    case badVerification
    /// A length field over its limit.
    case tooLong(field: String, length: Int, limit: Int)
    /// No method both sides allow, or a selection that was not offered.
    case noCommonMethod(offered: UInt32)
    case badSelection(UInt32)

    public var description: String {
        switch self {
        case .badPublicKey: return "MSE: the peer's Diffie-Hellman key is out of range"
        case .noSync(let what): return "MSE: no \(what) within the padding allowed"
        case .unknownTorrent: return "MSE: the peer asked for a torrent we do not serve"
        case .badVerification: return "MSE: the verification constant did not decrypt to zeros"
        case .tooLong(let field, let length, let limit):
            return "MSE: \(field) of \(length) bytes (limit \(limit))"
        case .noCommonMethod(let offered): return "MSE: no method in common (offered \(offered))"
        case .badSelection(let selected): return "MSE: selected method \(selected) was not offered"
        }
    }
}

/// A finished MSE handshake: the method chosen, the torrent (its info-hash, the SKEY), the
/// ciphers for the stream (nil for plaintext), and the stream bytes that came with the
/// handshake (already decrypted): the initiator's initial payload (IA) and whatever followed.
public struct MSEResult: Sendable {
    public var method: MSEMethods
    public var infoHash: [UInt8]
    /// Encrypts what we send (RC4 only).
    public var encryptor: RC4?
    /// Decrypts what we receive (RC4 only).
    public var decryptor: RC4?
    public var payload: [UInt8]
}

/// What to do after feeding bytes: send `output`, then wait for more, or carry on with the
/// stream once `result` is there.
public struct MSEStep: Sendable {
    public var output: [UInt8]
    public var result: MSEResult?
}

/// The initiating side of MSE (A): `Ya PadA` →, ← `Yb PadB`, `HASH('req1', S)
/// HASH('req2', SKEY)⊕HASH('req3', S) E(VC crypto_provide len(PadC) PadC len(IA)) E(IA)` →,
/// ← `E(VC crypto_select len(PadD) PadD)`. Sans-I/O: bytes in, bytes out; its randomness (the
/// private key and the padding) is passed in.
public struct MSEInitiator: Sendable {
    enum State {
        case awaitingKey, awaitingVC, awaitingSelect
        case awaitingPadD(Int, MSEMethods)
        case done
    }

    private let infoHash: [UInt8]
    private let provide: MSEMethods
    private let privateKey: [UInt8]
    private let padA: [UInt8]
    private let padC: [UInt8]
    private let initialPayload: [UInt8]
    private var state = State.awaitingKey
    private var buffer: [UInt8] = []
    private var encryptor: RC4?
    private var decryptor: RC4?
    /// What B's encrypted VC looks like: the first 8 bytes of its keystream.
    private var expectedVC: [UInt8] = []

    /// `infoHash` names the torrent (SKEY); `initialPayload` (IA, at most 65,535 bytes: the
    /// BitTorrent handshake) goes encrypted in the third message. `privateKey` (20 random bytes)
    /// and the paddings (each at most 512 bytes, random) are the caller's randomness.
    public init(
        infoHash: [UInt8], provide: MSEMethods, initialPayload: [UInt8], privateKey: [UInt8], padA: [UInt8],
        padC: [UInt8]
    ) {
        self.infoHash = infoHash
        self.provide = provide
        self.initialPayload = Array(initialPayload.prefix(0xFFFF))
        self.privateKey = privateKey
        self.padA = Array(padA.prefix(MSE.maxPadding))
        self.padC = Array(padC.prefix(MSE.maxPadding))
    }

    /// The same, its randomness drawn from `generator` (padding of 0 to 512 bytes).
    public init(
        infoHash: [UInt8], provide: MSEMethods, initialPayload: [UInt8],
        using generator: inout some RandomNumberGenerator
    ) {
        self.init(
            infoHash: infoHash, provide: provide, initialPayload: initialPayload,
            privateKey: MSE.randomBytes(MSE.privateKeyLength, using: &generator),
            padA: MSE.randomPadding(using: &generator), padC: MSE.randomPadding(using: &generator))
    }

    /// The first message: our public key and PadA.
    public func start() -> [UInt8] {
        (MSE.publicKey(privateKey: privateKey) ?? []) + padA
    }

    /// Bytes from the responder.
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws(MSEError) -> MSEStep {
        buffer += bytes
        var output: [UInt8] = []
        while true {
            switch state {
            case .awaitingKey:
                guard buffer.count >= MSE.keyLength else { return MSEStep(output: output) }
                let remote = Array(buffer.prefix(MSE.keyLength))
                buffer.removeFirst(MSE.keyLength)
                guard let secret = MSE.sharedSecret(privateKey: privateKey, remotePublicKey: remote) else {
                    throw .badPublicKey
                }
                var encryptor = RC4(key: MSE.hash(Array("keyA".utf8), secret, infoHash))
                var decryptor = RC4(key: MSE.hash(Array("keyB".utf8), secret, infoHash))
                var probe = decryptor
                expectedVC = probe.crypted(MSE.vc)
                let req2 = MSE.hash(Array("req2".utf8), infoHash)
                let req3 = MSE.hash(Array("req3".utf8), secret)
                output += MSE.hash(Array("req1".utf8), secret)
                output += zip(req2, req3).map { $0 ^ $1 }
                var plain = MSE.vc + MSE.bigEndian(provide.rawValue, 4) + MSE.bigEndian(UInt32(padC.count), 2)
                plain += padC + MSE.bigEndian(UInt32(initialPayload.count), 2)
                output += encryptor.crypted(plain)
                output += encryptor.crypted(initialPayload)
                _ = decryptor  // advanced once the VC is found
                self.encryptor = encryptor
                self.decryptor = decryptor
                state = .awaitingVC
            case .awaitingVC:
                // B's VC comes after PadB (at most 512 bytes).
                guard let at = MSE.find(expectedVC, in: buffer) else {
                    if buffer.count >= MSE.maxPadding + expectedVC.count {
                        throw .noSync("verification constant")
                    }
                    return MSEStep(output: output)
                }
                buffer.removeFirst(at + expectedVC.count)
                _ = decryptor?.crypted(MSE.vc)
                state = .awaitingSelect
            case .awaitingSelect:
                guard buffer.count >= 6 else { return MSEStep(output: output) }
                let fields = decryptor?.crypted(buffer.prefix(6)) ?? []
                buffer.removeFirst(6)
                let selected = MSEMethods(rawValue: MSE.readBigEndian(fields[0..<4]))
                let padLength = Int(MSE.readBigEndian(fields[4..<6]))
                guard selected == .plaintext || selected == .rc4, provide.contains(selected) else {
                    throw .badSelection(selected.rawValue)
                }
                guard padLength <= MSE.maxPadding else {
                    throw .tooLong(field: "PadD", length: padLength, limit: MSE.maxPadding)
                }
                state = .awaitingPadD(padLength, selected)
            case .awaitingPadD(let length, let selected):
                guard buffer.count >= length else { return MSEStep(output: output) }
                _ = decryptor?.crypted(buffer.prefix(length))
                buffer.removeFirst(length)
                var payload = buffer
                buffer = []
                state = .done
                let rc4 = selected == .rc4
                if rc4 { decryptor?.crypt(&payload) }
                let result = MSEResult(
                    method: selected, infoHash: infoHash, encryptor: rc4 ? encryptor : nil,
                    decryptor: rc4 ? decryptor : nil, payload: payload)
                return MSEStep(output: output, result: result)
            case .done:
                return MSEStep(output: output)
            }
        }
    }
}

/// The responding side of MSE (B): finds the torrent among those served by the initiator's
/// `req2` hash, and chooses the method. Sans-I/O; its randomness is passed in.
public struct MSEResponder: Sendable {
    enum State {
        case awaitingKey, awaitingReq1, awaitingSKEY, awaitingProvide
        case awaitingPadC(Int, MSEMethods)
        case awaitingIA(Int, MSEMethods)
        case done
    }

    /// `HASH('req2', infoHash)` → info-hash, for every torrent served.
    private let torrents: [[UInt8]: [UInt8]]
    private let allow: MSEMethods
    private let prefer: MSEMethods
    private let privateKey: [UInt8]
    private let padB: [UInt8]
    private let padD: [UInt8]
    private var state = State.awaitingKey
    private var buffer: [UInt8] = []
    private var secret: [UInt8] = []
    private var req1: [UInt8] = []
    private var infoHash: [UInt8] = []
    private var encryptor: RC4?
    private var decryptor: RC4?
    /// Most bytes of initial payload accepted (the BitTorrent handshake is 68).
    public static let maxInitialPayload = 8_192

    /// Serves `infoHashes`; `allow` are the methods accepted, `prefer` the one chosen when the
    /// initiator offers several. `privateKey`, `padB` and `padD` are the caller's randomness.
    public init(
        infoHashes: [[UInt8]], allow: MSEMethods, prefer: MSEMethods, privateKey: [UInt8], padB: [UInt8],
        padD: [UInt8]
    ) {
        var torrents: [[UInt8]: [UInt8]] = [:]
        for hash in infoHashes { torrents[MSE.hash(Array("req2".utf8), hash)] = hash }
        self.torrents = torrents
        self.allow = allow
        self.prefer = prefer
        self.privateKey = privateKey
        self.padB = Array(padB.prefix(MSE.maxPadding))
        self.padD = Array(padD.prefix(MSE.maxPadding))
    }

    /// The same, its randomness drawn from `generator`.
    public init(
        infoHashes: [[UInt8]], allow: MSEMethods, prefer: MSEMethods,
        using generator: inout some RandomNumberGenerator
    ) {
        self.init(
            infoHashes: infoHashes, allow: allow, prefer: prefer,
            privateKey: MSE.randomBytes(MSE.privateKeyLength, using: &generator),
            padB: MSE.randomPadding(using: &generator), padD: MSE.randomPadding(using: &generator))
    }

    /// Bytes from the initiator.
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws(MSEError) -> MSEStep {
        buffer += bytes
        var output: [UInt8] = []
        while true {
            switch state {
            case .awaitingKey:
                guard buffer.count >= MSE.keyLength else { return MSEStep(output: output) }
                let remote = Array(buffer.prefix(MSE.keyLength))
                buffer.removeFirst(MSE.keyLength)
                guard let secret = MSE.sharedSecret(privateKey: privateKey, remotePublicKey: remote),
                    let ours = MSE.publicKey(privateKey: privateKey)
                else { throw .badPublicKey }
                self.secret = secret
                req1 = MSE.hash(Array("req1".utf8), secret)
                output += ours + padB
                state = .awaitingReq1
            case .awaitingReq1:
                // After PadA (at most 512 bytes).
                guard let at = MSE.find(req1, in: buffer) else {
                    if buffer.count >= MSE.maxPadding + req1.count { throw .noSync("req1 hash") }
                    return MSEStep(output: output)
                }
                buffer.removeFirst(at + req1.count)
                state = .awaitingSKEY
            case .awaitingSKEY:
                guard buffer.count >= 20 else { return MSEStep(output: output) }
                let req3 = MSE.hash(Array("req3".utf8), secret)
                let req2 = zip(buffer.prefix(20), req3).map { $0 ^ $1 }
                buffer.removeFirst(20)
                guard let infoHash = torrents[req2] else { throw .unknownTorrent }
                self.infoHash = infoHash
                decryptor = RC4(key: MSE.hash(Array("keyA".utf8), secret, infoHash))
                encryptor = RC4(key: MSE.hash(Array("keyB".utf8), secret, infoHash))
                state = .awaitingProvide
            case .awaitingProvide:
                guard buffer.count >= 14 else { return MSEStep(output: output) }
                let fields = decryptor?.crypted(buffer.prefix(14)) ?? []
                buffer.removeFirst(14)
                guard fields.prefix(8).allSatisfy({ $0 == 0 }) else { throw .badVerification }
                let offered = MSEMethods(rawValue: MSE.readBigEndian(fields[8..<12]))
                let padLength = Int(MSE.readBigEndian(fields[12..<14]))
                guard padLength <= MSE.maxPadding else {
                    throw .tooLong(field: "PadC", length: padLength, limit: MSE.maxPadding)
                }
                let common = offered.intersection(allow)
                let selected: MSEMethods =
                    common.contains(prefer)
                    ? prefer : common.contains(.rc4) ? .rc4 : common.contains(.plaintext) ? .plaintext : []
                guard !selected.isEmpty else { throw .noCommonMethod(offered: offered.rawValue) }
                state = .awaitingPadC(padLength, selected)
            case .awaitingPadC(let length, let selected):
                guard buffer.count >= length + 2 else { return MSEStep(output: output) }
                let plain = decryptor?.crypted(buffer.prefix(length + 2)) ?? []
                buffer.removeFirst(length + 2)
                let iaLength = Int(MSE.readBigEndian(plain[length..<length + 2]))
                guard iaLength <= Self.maxInitialPayload else {
                    throw .tooLong(field: "IA", length: iaLength, limit: Self.maxInitialPayload)
                }
                state = .awaitingIA(iaLength, selected)
            case .awaitingIA(let length, let selected):
                guard buffer.count >= length else { return MSEStep(output: output) }
                var payload = decryptor?.crypted(buffer.prefix(length)) ?? []
                buffer.removeFirst(length)
                let rc4 = selected == .rc4
                var rest = buffer
                buffer = []
                if rc4 { decryptor?.crypt(&rest) }
                payload += rest
                let plain =
                    MSE.vc + MSE.bigEndian(selected.rawValue, 4) + MSE.bigEndian(UInt32(padD.count), 2) + padD
                output += encryptor?.crypted(plain) ?? []
                state = .done
                let result = MSEResult(
                    method: selected, infoHash: infoHash, encryptor: rc4 ? encryptor : nil,
                    decryptor: rc4 ? decryptor : nil, payload: payload)
                return MSEStep(output: output, result: result)
            case .done:
                return MSEStep(output: output)
            }
        }
    }
}

extension MSE {
    static func randomBytes(_ count: Int, using generator: inout some RandomNumberGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Random padding of 0 to 512 bytes (the spec's range).
    static func randomPadding(using generator: inout some RandomNumberGenerator) -> [UInt8] {
        randomBytes(Int.random(in: 0...maxPadding, using: &generator), using: &generator)
    }

    static func bigEndian(_ value: UInt32, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }

    static func readBigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Where `marker` first occurs in `bytes`.
    static func find(_ marker: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= marker.count, !marker.isEmpty else { return nil }
        for start in 0...(bytes.count - marker.count) where bytes[start] == marker[0] {
            if bytes[start..<start + marker.count].elementsEqual(marker) { return start }
        }
        return nil
    }
}
