import Multiformats
import PeerCrypto

/// Why an identify message was refused.
public enum IdentifyError: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed(String, offset: Int)
    case tooLarge(Int)

    public var description: String {
        switch self {
        case .malformed(let what, let offset): return "identify: \(what) at byte \(offset)"
        case .tooLarge(let count):
            return "identify: a message of \(count) bytes (at most \(Identify.maxLength))"
        }
    }
}

/// libp2p's identify message (`/ipfs/id/1.0.0` and `/ipfs/id/push/1.0.0`, identify spec):
/// `protocolVersion = 5`, `agentVersion = 6`, `publicKey = 1`, repeated `listenAddrs = 2`
/// (binary multiaddrs), `observedAddr = 4`, repeated `protocols = 3`, `signedPeerRecord = 8`.
public struct Identify: Sendable, Hashable {
    public static let protocolID = "/ipfs/id/1.0.0"
    public static let pushProtocolID = "/ipfs/id/push/1.0.0"
    /// Largest message read (go-libp2p's limit is 8 KiB of signed record; this leaves room).
    public static let maxLength = 64 << 10
    /// Most addresses and protocols kept from one message.
    public static let maxEntries = 256

    public var protocolVersion: String?
    public var agentVersion: String?
    public var publicKey: [UInt8]?
    public var listenAddresses: [Multiaddr] = []
    public var observedAddress: Multiaddr?
    public var protocols: [String] = []
    public var signedPeerRecord: [UInt8]?

    public init(
        protocolVersion: String? = "ipfs/0.1.0", agentVersion: String? = nil, publicKey: [UInt8]? = nil,
        listenAddresses: [Multiaddr] = [], observedAddress: Multiaddr? = nil, protocols: [String] = []
    ) {
        self.protocolVersion = protocolVersion
        self.agentVersion = agentVersion
        self.publicKey = publicKey
        self.listenAddresses = listenAddresses
        self.observedAddress = observedAddress
        self.protocols = protocols
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        if let publicKey { out += Protobuf.field(1, publicKey) }
        for address in listenAddresses { out += Protobuf.field(2, address.bytes) }
        for name in protocols { out += Protobuf.field(3, Array(name.utf8)) }
        if let observedAddress { out += Protobuf.field(4, observedAddress.bytes) }
        if let protocolVersion { out += Protobuf.field(5, Array(protocolVersion.utf8)) }
        if let agentVersion { out += Protobuf.field(6, Array(agentVersion.utf8)) }
        if let signedPeerRecord { out += Protobuf.field(8, signedPeerRecord) }
        return out
    }

    /// Reads a message; addresses that do not parse are skipped (a peer may list transports
    /// this node does not know), text that is not UTF-8 is an error.
    public init(bytes: [UInt8]) throws(IdentifyError) {
        guard bytes.count <= Self.maxLength else { throw .tooLarge(bytes.count) }
        let fields: [(UInt64, [UInt8])]
        do {
            fields = try Protobuf.fields(bytes)
        } catch {
            throw .malformed(error.what, offset: error.offset)
        }
        func text(_ value: [UInt8], _ name: String) throws(IdentifyError) -> String {
            guard let string = String(validating: value, as: UTF8.self) else {
                throw .malformed("\(name) is not UTF-8", offset: 0)
            }
            return string
        }
        protocolVersion = nil
        for (number, value) in fields {
            switch number {
            case 1: publicKey = value
            case 2:
                if listenAddresses.count < Self.maxEntries, let address = try? Multiaddr(bytes: value) {
                    listenAddresses.append(address)
                }
            case 3: if protocols.count < Self.maxEntries { protocols.append(try text(value, "a protocol")) }
            case 4: observedAddress = try? Multiaddr(bytes: value)
            case 5: protocolVersion = try text(value, "protocolVersion")
            case 6: agentVersion = try text(value, "agentVersion")
            case 8: signedPeerRecord = value
            default: break
            }
        }
    }

    /// The sender's public key, checked, and whether it is the peer the connection authenticated.
    public func key(matching peer: PeerID) -> PublicKey? {
        guard let publicKey, let key = try? PublicKey(bytes: publicKey), peer.matches(key) else { return nil }
        return key
    }
}

/// libp2p's ping (`/ipfs/ping/1.0.0`, ping spec): 32 random bytes, echoed back as they are.
public enum Ping {
    public static let protocolID = "/ipfs/ping/1.0.0"
    public static let size = 32
}
