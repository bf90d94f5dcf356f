import Crypto
import Multiformats

/// A libp2p peer ID: the multihash of a peer's public key protobuf (peer-ids spec, "Peer Ids"),
/// written in base58btc (`12D3KooW…`, `Qm…`) or as a CIDv1 with the `libp2p-key` codec.
public struct PeerID: Sendable, Hashable, CustomStringConvertible {
    public let multihash: Multihash

    /// Public key protobufs this long or shorter are inlined (identity multihash).
    public static let maxInlineKeyLength = 42

    public init(publicKey: PublicKey) {
        let bytes = publicKey.encoded.bytes
        multihash =
            bytes.count <= Self.maxInlineKeyLength
            ? Multihash(code: Multihash.Function.identity.rawValue, digest: bytes)
            : Multihash.hash(bytes, with: .sha256)
    }

    /// Reads a peer ID's multihash bytes: identity (a key protobuf of at most 42 bytes) or SHA-256.
    public init(multihash: Multihash) throws(PeerCryptoError) {
        switch multihash.code {
        case Multihash.Function.identity.rawValue:
            guard multihash.digest.count <= Self.maxInlineKeyLength else {
                throw .badPeerID("an inlined key of \(multihash.digest.count) bytes (at most 42)")
            }
        case Multihash.Function.sha256.rawValue:
            guard multihash.digest.count == 32 else {
                throw .badPeerID("a SHA-256 digest of \(multihash.digest.count) bytes")
            }
        default:
            throw .badPeerID("multihash code \(multihash.code) (identity or sha2-256 only)")
        }
        self.multihash = multihash
    }

    /// Parses `12D3KooW…`/`Qm…` (base58btc multihash) or a CIDv1 `libp2p-key` (`k51…`, `bafz…`).
    public init(_ text: String) throws(PeerCryptoError) {
        guard !text.isEmpty, text.utf8.count <= 128 else { throw .badPeerID("length \(text.utf8.count)") }
        if text.hasPrefix("1") || text.hasPrefix("Qm") {
            do {
                let bytes = try Multibase.base58btc.decode(digits: Array(text.utf8))
                try self.init(multihash: try Multihash(bytes: bytes))
            } catch let error as PeerCryptoError {
                throw error
            } catch {
                throw .badPeerID("'\(text)' is not a base58btc multihash (\(error))")
            }
            return
        }
        let cid: CID
        do {
            cid = try CID(text)
        } catch {
            throw .badPeerID("'\(text)' is neither base58btc nor a CID (\(error))")
        }
        guard cid.codec == .libp2pKey else {
            throw .badPeerID("a CID with codec \(cid.codecCode), not libp2p-key")
        }
        try self.init(multihash: cid.multihash)
    }

    /// The public key, when it is inlined in the ID (Ed25519, secp256k1).
    public var inlinedKey: PublicKey? {
        guard multihash.code == Multihash.Function.identity.rawValue else { return nil }
        return try? PublicKey(bytes: multihash.digest)
    }

    /// Whether `key` is this peer's key.
    public func matches(_ key: PublicKey) -> Bool { PeerID(publicKey: key) == self }

    /// Base58btc, as libp2p prints peer IDs.
    public var description: String {
        String(decoding: Multibase.base58btc.digits(of: multihash.bytes), as: UTF8.self)
    }

    /// The CIDv1 form (`libp2p-key`, base36 as Kubo prints it).
    public var cid: CID { CID(v1: .libp2pKey, multihash) }
}
