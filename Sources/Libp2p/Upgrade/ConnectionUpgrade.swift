import PeerCrypto

/// Why a connection could not be upgraded to an authenticated, multiplexed libp2p connection.
public enum UpgradeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// multistream-select failed while choosing the security protocol or the muxer.
    case negotiation(phase: String, MultistreamError)
    case noise(LibP2PNoiseError)
    /// A TLS handshake failed or its certificate did not prove a libp2p identity.
    case tls(String)
    /// The authenticated peer is not the one dialled.
    case unexpectedPeer(expected: PeerID, got: PeerID)
    /// A protocol was agreed that this side cannot run.
    case unsupported(String)
    /// Input after the upgrade ended, or before it started.
    case outOfOrder

    public var description: String {
        switch self {
        case .negotiation(let phase, let error): return "negotiating the \(phase): \(error)"
        case .noise(let error): return "\(error)"
        case .tls(let why): return "tls: \(why)"
        case .unexpectedPeer(let expected, let got): return "dialled \(expected) but the peer is \(got)"
        case .unsupported(let name): return "agreed on \(name), which this node cannot run"
        case .outOfOrder: return "connection input out of order"
        }
    }
}

/// The security protocols a node offers, in order of preference.
public enum SecurityProtocol: String, Sendable, Hashable, CaseIterable {
    case noise = "/noise"
    case tls = "/tls/1.0.0"
}

/// A connection once upgraded: who the peer is, what was agreed, and what the driver keeps
/// running (the Noise transport, or nothing below the muxer when TLS encrypts).
public struct UpgradedConnection: Sendable {
    public var remotePeer: PeerID
    public var remoteKey: PublicKey
    public var security: SecurityProtocol
    public var muxer: String
    /// The Noise transport; nil when TLS sits below (the driver's TLS handler encrypts).
    public var noise: NoiseTransport?
    /// Plaintext that came after the muxer was agreed: the muxer's first bytes.
    public var muxerBytes: [UInt8]
}

/// The connection upgrade (connections spec, "Upgrading connections") as a sans-I/O state
/// machine: multistream-select chooses the security protocol on the raw connection; Noise runs
/// here, TLS in the driver (``Action/startTLS(_:)``); then multistream-select, now encrypted,
/// chooses the muxer. The dialer proposes, the listener answers; the dialer is the muxer's client.
public struct ConnectionUpgrade: Sendable {
    public enum Role: Sendable { case dialer, listener }

    public enum Action: Sendable {
        /// Write these bytes to the connection.
        case send([UInt8])
        /// Start TLS on the connection now; `pending` bytes already read belong to TLS.
        case startTLS(pending: [UInt8])
        /// The upgrade is done.
        case established(UpgradedConnection)
    }

    enum Phase: Sendable {
        case idle
        case security(MultistreamNegotiation)
        case noise(LibP2PNoiseHandshake, NoiseFrameReader)
        case tls
        case muxer(MultistreamNegotiation, Secured)
        case done
    }

    /// What the security handshake established.
    struct Secured: Sendable {
        var peer: PeerID
        var key: PublicKey
        var security: SecurityProtocol
        var noise: NoiseTransport?
    }

    public static let yamux = "/yamux/1.0.0"

    public let role: Role
    let identity: PrivateKey
    let expected: PeerID?
    let security: [SecurityProtocol]
    let muxers: [String]
    var phase: Phase = .idle

    /// `security` and `muxers` in order of preference; `expected` is the peer dialled, when known.
    public init(
        role: Role, identity: PrivateKey, expected: PeerID? = nil,
        security: [SecurityProtocol] = [.noise, .tls], muxers: [String] = [Self.yamux]
    ) {
        self.role = role
        self.identity = identity
        self.expected = expected
        self.security = security
        self.muxers = muxers
    }

    /// The first actions: the dialer proposes its first security protocol at once.
    public mutating func start() -> [Action] {
        switch role {
        case .dialer:
            var dialer = MultistreamDialer(protocols: security.map(\.rawValue))
            let bytes = dialer.start()
            phase = .security(.dialer(dialer))
            return [.send(bytes)]
        case .listener:
            phase = .security(.listener(MultistreamListener(supported: security.map(\.rawValue))))
            return []
        }
    }

    /// Bytes read from the connection (decrypted by the driver's TLS handler when TLS was
    /// agreed); returns what to do.
    public mutating func receive(_ bytes: [UInt8]) throws(UpgradeError) -> [Action] {
        switch phase {
        case .idle, .done, .tls:
            throw .outOfOrder
        case .security(var negotiation):
            let (replies, selected): ([[UInt8]], String?)
            do {
                (replies, selected) = try negotiation.receive(bytes)
            } catch {
                throw .negotiation(phase: "security protocol", error)
            }
            phase = .security(negotiation)
            let actions = replies.map(Action.send)
            guard let selected else { return actions }
            return actions + (try secure(selected, pending: negotiation.remainder))
        case .noise(var handshake, var reader):
            reader.feed(bytes)
            phase = .noise(handshake, reader)
            return try noiseStep(&handshake, &reader)
        case .muxer(var negotiation, var secured):
            let plaintext = try decrypt(bytes, &secured)
            let (replies, selected): ([[UInt8]], String?)
            do {
                (replies, selected) = try negotiation.receive(plaintext)
            } catch {
                throw .negotiation(phase: "stream muxer", error)
            }
            var actions: [Action] = []
            for reply in replies { actions.append(.send(try encrypt(reply, &secured))) }
            guard let selected else {
                phase = .muxer(negotiation, secured)
                return actions
            }
            phase = .done
            return actions + [.established(upgraded(secured, selected, negotiation.remainder))]
        }
    }

    /// The driver's TLS handshake finished: `remoteKey` is the identity its certificate proved.
    public mutating func tlsEstablished(remoteKey: PublicKey) throws(UpgradeError) -> [Action] {
        guard case .tls = phase else { throw .outOfOrder }
        let peer = remoteKey.peerID
        if let expected, expected != peer { throw .unexpectedPeer(expected: expected, got: peer) }
        return try negotiateMuxer(
            Secured(peer: peer, key: remoteKey, security: .tls, noise: nil), pending: [])
    }

    func upgraded(_ secured: Secured, _ muxer: String, _ remainder: [UInt8]) -> UpgradedConnection {
        UpgradedConnection(
            remotePeer: secured.peer, remoteKey: secured.key, security: secured.security, muxer: muxer,
            noise: secured.noise, muxerBytes: remainder)
    }

    mutating func secure(_ name: String, pending: [UInt8]) throws(UpgradeError) -> [Action] {
        guard let chosen = SecurityProtocol(rawValue: name) else { throw .unsupported(name) }
        switch chosen {
        case .tls:
            phase = .tls
            return [.startTLS(pending: pending)]
        case .noise:
            var handshake = LibP2PNoiseHandshake(
                role: role == .dialer ? .initiator : .responder, identity: identity, expected: expected)
            var reader = NoiseFrameReader()
            reader.feed(pending)
            var actions: [Action] = []
            if role == .dialer {
                do {
                    actions.append(.send(NoiseFrameReader.frame(try handshake.writeMessage())))
                } catch let error as LibP2PNoiseError {
                    throw .noise(error)
                } catch {
                    throw .noise(.badSignature)
                }
            }
            phase = .noise(handshake, reader)
            return actions + (try noiseStep(&handshake, &reader))
        }
    }

    /// Reads every whole handshake message buffered and answers in turn.
    mutating func noiseStep(
        _ handshake: inout LibP2PNoiseHandshake, _ reader: inout NoiseFrameReader
    ) throws(UpgradeError) -> [Action] {
        var actions: [Action] = []
        while !handshake.isComplete {
            if handshake.isWriting {
                do {
                    actions.append(.send(NoiseFrameReader.frame(try handshake.writeMessage())))
                } catch let error as LibP2PNoiseError {
                    throw .noise(error)
                } catch {
                    throw .noise(.badSignature)
                }
                continue
            }
            guard let message = reader.next() else {
                phase = .noise(handshake, reader)
                return actions
            }
            do {
                try handshake.readMessage(Array(message))
            } catch {
                if case .unexpectedPeer(let expected, let got) = error {
                    throw .unexpectedPeer(expected: expected, got: got)
                }
                throw .noise(error)
            }
        }
        let ciphers: (send: NoiseCipherState, receive: NoiseCipherState)
        do {
            ciphers = try handshake.split()
        } catch {
            throw .noise(error)
        }
        guard let peer = handshake.remotePeer, let key = handshake.remoteKey else {
            throw .noise(.badSignature)
        }
        let transport = NoiseTransport(send: ciphers.send, receive: ciphers.receive)
        let secured = Secured(peer: peer, key: key, security: .noise, noise: transport)
        return actions + (try negotiateMuxer(secured, pending: reader.remainder))
    }

    mutating func negotiateMuxer(_ secured: Secured, pending: [UInt8]) throws(UpgradeError) -> [Action] {
        var secured = secured
        switch role {
        case .dialer:
            var dialer = MultistreamDialer(protocols: muxers)
            let hello = try encrypt(dialer.start(), &secured)
            phase = .muxer(.dialer(dialer), secured)
            guard !pending.isEmpty else { return [.send(hello)] }
            return [.send(hello)] + (try receive(pending))
        case .listener:
            phase = .muxer(.listener(MultistreamListener(supported: muxers)), secured)
            return pending.isEmpty ? [] : try receive(pending)
        }
    }

    func decrypt(_ bytes: [UInt8], _ secured: inout Secured) throws(UpgradeError) -> [UInt8] {
        guard var noise = secured.noise else { return bytes }
        do {
            let plaintext = try noise.open(bytes)
            secured.noise = noise
            return plaintext
        } catch {
            throw .noise(.noise(error))
        }
    }

    func encrypt(_ bytes: [UInt8], _ secured: inout Secured) throws(UpgradeError) -> [UInt8] {
        guard var noise = secured.noise else { return bytes }
        do {
            let ciphertext = try noise.seal(bytes)
            secured.noise = noise
            return ciphertext
        } catch {
            throw .noise(.noise(error))
        }
    }
}
