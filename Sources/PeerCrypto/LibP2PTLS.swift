import Crypto
import Foundation
import SwiftASN1
import X509

/// Why a peer's TLS certificate does not prove a libp2p identity (libp2p TLS spec, "Peer
/// Authentication").
public enum LibP2PTLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The peer sent no certificate, or more than the one the spec allows.
    case certificateCount(Int)
    /// The certificate is not DER X.509 that this node can read.
    case malformedCertificate(String)
    /// No libp2p Public Key Extension (`1.3.6.1.4.1.53594.1.1`), or more than one.
    case extensionCount(Int)
    /// The extension's `SignedKey` is not two DER OCTET STRINGs in a SEQUENCE.
    case malformedExtension(String)
    /// The host key in the extension is not a libp2p public key this node can read.
    case badHostKey(PeerCryptoError)
    /// A critical extension this node does not understand (the spec says: abort).
    case unknownCriticalExtension(String)
    /// The certificate's signature algorithm is one the spec forbids or this node cannot check.
    case unsupportedSignatureAlgorithm(String)
    /// The certificate is not valid at the time it was received.
    case notValidNow(notBefore: Date, notAfter: Date)
    /// The certificate's self-signature does not verify.
    case badSelfSignature
    /// The host key's signature over `"libp2p-tls-handshake:"` and the certificate's key does not verify.
    case badHostSignature

    public var description: String {
        switch self {
        case .certificateCount(let count): return "the peer sent \(count) certificates, not exactly one"
        case .malformedCertificate(let why): return "malformed certificate: \(why)"
        case .extensionCount(let count):
            return "the certificate has \(count) libp2p public key extensions, not exactly one"
        case .malformedExtension(let why): return "malformed libp2p public key extension: \(why)"
        case .badHostKey(let error): return "the libp2p public key extension's host key: \(error)"
        case .unknownCriticalExtension(let oid): return "unknown critical extension \(oid)"
        case .unsupportedSignatureAlgorithm(let name):
            return "certificate signature algorithm \(name) not accepted"
        case .notValidNow(let notBefore, let notAfter):
            return "the certificate is valid only from \(notBefore) to \(notAfter)"
        case .badSelfSignature: return "the certificate's self-signature does not verify"
        case .badHostSignature: return "the host key's signature over the certificate key does not verify"
        }
    }
}

/// The certificate side of libp2p's TLS 1.3 handshake (`/tls/1.0.0`, libp2p TLS spec): a
/// self-signed certificate whose key is not the host key, carrying the host key and the host
/// key's signature over the certificate's `SubjectPublicKeyInfo` in the libp2p Public Key
/// Extension. Peers are authenticated by that extension, never by a CA.
public enum LibP2PTLS {
    /// The libp2p Public Key Extension's OID, allocated by IANA to libp2p.
    public static let extensionOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 53594, 1, 1]
    /// What the host key signs, ahead of the certificate's `SubjectPublicKeyInfo` DER.
    public static let signaturePrefix = Array("libp2p-tls-handshake:".utf8)
    /// The ALPN protocol name both sides offer (without early muxer negotiation).
    public static let alpn = "libp2p"
    /// Largest certificate accepted from a peer (a libp2p certificate is 0.4–2 KB).
    public static let maxCertificateLength = 16 << 10

    /// A certificate and its key, DER-encoded, ready for a TLS library.
    public struct Credentials: Sendable {
        /// The X.509 certificate, DER.
        public var certificate: [UInt8]
        /// The certificate's P-256 private key, PKCS #8 DER.
        public var privateKey: [UInt8]
    }

    /// Makes a fresh P-256 certificate key and a self-signed certificate binding `identity`,
    /// valid from an hour before `now` (clock skew) for 100 years, as go-libp2p does.
    public static func credentials(for identity: PrivateKey, now: Date = Date()) throws -> Credentials {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let spki = try der(publicKey)
        let signed = try signedKey(
            hostKey: identity.publicKey.encoded.bytes, signature: try identity.sign(signaturePrefix + spki))
        let extensions = try Certificate.Extensions([
            Certificate.Extension(oid: extensionOID, critical: true, value: signed[...])
        ])
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now - 3_600, notValidAfter: now + 100 * 365 * 86_400,
            issuer: DistinguishedName(), subject: DistinguishedName(), signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        return Credentials(
            certificate: try der(certificate), privateKey: Array(key.derRepresentation))
    }

    /// Checks a peer's certificate chain as the spec requires (exactly one certificate, valid
    /// at `now`, a good self-signature, no unknown critical extension, exactly one libp2p
    /// extension whose host key signed the certificate's key) and returns the host key.
    public static func verify(chain: [[UInt8]], now: Date = Date()) throws(LibP2PTLSError) -> PublicKey {
        guard chain.count == 1 else { throw .certificateCount(chain.count) }
        let bytes = chain[0]
        guard bytes.count <= maxCertificateLength else {
            throw .malformedCertificate("\(bytes.count) bytes, more than \(maxCertificateLength)")
        }
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: bytes)
        } catch {
            throw .malformedCertificate("\(error)")
        }
        let accepted: [Certificate.SignatureAlgorithm] = [
            .ecdsaWithSHA256, .ecdsaWithSHA384, .ecdsaWithSHA512, .ed25519, .sha256WithRSAEncryption,
            .sha384WithRSAEncryption, .sha512WithRSAEncryption,
        ]
        guard accepted.contains(certificate.signatureAlgorithm) else {
            throw .unsupportedSignatureAlgorithm("\(certificate.signatureAlgorithm)")
        }
        guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else {
            throw .notValidNow(notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter)
        }
        var values: [ArraySlice<UInt8>] = []
        for ext in certificate.extensions {
            if ext.oid == extensionOID {
                values.append(ext.value)
            } else if ext.critical, !understood.contains(ext.oid) {
                throw .unknownCriticalExtension("\(ext.oid)")
            }
        }
        guard values.count == 1 else { throw .extensionCount(values.count) }
        guard certificate.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw .badSelfSignature
        }
        let (hostKeyBytes, signature) = try parseSignedKey(Array(values[0]))
        let hostKey: PublicKey
        do {
            hostKey = try PublicKey(bytes: hostKeyBytes)
        } catch {
            throw .badHostKey(error)
        }
        let spki: [UInt8]
        do {
            spki = try Self.der(certificate.publicKey)
        } catch {
            throw .malformedCertificate("its public key does not re-encode: \(error)")
        }
        guard hostKey.verify(signature, for: signaturePrefix + spki) else { throw .badHostSignature }
        return hostKey
    }

    /// Critical extensions a libp2p certificate may carry besides its own (as rust-libp2p
    /// accepts them): basic constraints, key usage, extended key usage.
    static let understood: [ASN1ObjectIdentifier] = [[2, 5, 29, 19], [2, 5, 29, 15], [2, 5, 29, 37]]

    static func der(_ element: some DERSerializable) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(element)
        return serializer.serializedBytes
    }

    /// `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`, DER.
    public static func signedKey(hostKey: [UInt8], signature: [UInt8]) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(ASN1OctetString(contentBytes: hostKey[...]))
            try coder.serialize(ASN1OctetString(contentBytes: signature[...]))
        }
        return serializer.serializedBytes
    }

    /// Reads a `SignedKey`: the host key protobuf and its signature. Total: any bytes give the
    /// two fields or ``LibP2PTLSError/malformedExtension(_:)``.
    public static func parseSignedKey(_ bytes: [UInt8]) throws(LibP2PTLSError) -> (
        hostKey: [UInt8], signature: [UInt8]
    ) {
        do {
            let node = try DER.parse(bytes)
            return try DER.sequence(node, identifier: .sequence) { nodes in
                let key = try ASN1OctetString(derEncoded: &nodes)
                let signature = try ASN1OctetString(derEncoded: &nodes)
                return (Array(key.bytes), Array(signature.bytes))
            }
        } catch {
            throw .malformedExtension("\(error)")
        }
    }
}
