import Multiformats
import PeerCrypto

/// How messages are signed and what is accepted (go-libp2p's `MessageSignaturePolicy`).
public enum SignaturePolicy: String, Sendable, Hashable, CaseIterable {
    /// Every message carries `from`, `seqno` and a valid signature (the default everywhere).
    case strictSign
    /// No message carries `from`, `seqno`, `signature` or `key` (anonymous topics).
    case strictNoSign
}

extension PubSubMessage {
    /// The prefix of every signed payload (pubsub spec, "Message Signing").
    public static let signingPrefix = Array("libp2p-pubsub:".utf8)

    /// A message signed by `identity`: `from` is its peer ID, `key` is set only when the peer ID
    /// does not inline the key (RSA, ECDSA), and the signature covers the prefix and the message
    /// without `signature` and `key`.
    public static func signed(
        topic: String, data: [UInt8], seqno: UInt64, by identity: PrivateKey
    ) throws -> PubSubMessage {
        let peerID = identity.publicKey.peerID
        var message = PubSubMessage(
            from: peerID.multihash.bytes, data: data, seqno: seqno.bigEndianBytes, topic: topic)
        message.signature = try identity.sign(signingPrefix + message.encoded(signed: false))
        if peerID.inlinedKey == nil { message.key = identity.publicKey.encoded.bytes }
        return message
    }

    /// An anonymous message (StrictNoSign): only data and topic.
    public static func anonymous(topic: String, data: [UInt8]) -> PubSubMessage {
        PubSubMessage(data: data, topic: topic)
    }

    /// The author, when the message is signed by the key its `from` names.
    public func verifiedAuthor() throws(GossipError) -> PeerID {
        guard let from else { throw .badSignature("no author (from)") }
        guard let seqno, seqno.count == 8 else { throw .badSignature("no 8-byte seqno") }
        _ = seqno
        guard let signature else { throw .badSignature("no signature") }
        let author: PeerID
        do {
            author = try PeerID(multihash: try Multihash(bytes: from))
        } catch {
            throw .badSignature("from is not a peer ID: \(error)")
        }
        let publicKey: PublicKey
        if let key {
            do {
                publicKey = try PublicKey(bytes: key)
            } catch {
                throw .badSignature("the key field is not a public key: \(error)")
            }
            guard author.matches(publicKey) else { throw .badSignature("the key is not \(author)'s") }
        } else if let inlined = author.inlinedKey {
            publicKey = inlined
        } else {
            throw .badSignature("\(author) does not inline its key and the message carries none")
        }
        guard publicKey.verify(signature, for: Self.signingPrefix + encoded(signed: false)) else {
            throw .badSignature("the signature does not verify under \(author)'s key")
        }
        return author
    }

    /// Whether the message meets `policy`; the reason when it does not.
    public func check(_ policy: SignaturePolicy) throws(GossipError) {
        switch policy {
        case .strictSign: _ = try verifiedAuthor()
        case .strictNoSign:
            guard from == nil, seqno == nil, signature == nil, key == nil else {
                throw .badSignature("an anonymous topic's message carries from, seqno, signature or key")
            }
        }
    }
}

extension UInt64 {
    var bigEndianBytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * $0)) } }
}
