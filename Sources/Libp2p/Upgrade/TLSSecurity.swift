import NIOCore
import NIOSSL
import PeerCrypto

/// The TLS side of `/tls/1.0.0` on swift-nio-ssl: TLS 1.3 only, ALPN `libp2p`, the host's
/// libp2p certificate (``LibP2PTLS/credentials(for:now:)``, made once per host) on both sides,
/// the client certificate required, and the peer verified by its libp2p extension alone
/// (``LibP2PTLS/verify(chain:now:)``), never by a CA or a host name (libp2p TLS spec).
struct TLSSecurity: Sendable {
    let client: NIOSSLContext
    let server: NIOSSLContext

    init(identity: PrivateKey) throws {
        let credentials = try LibP2PTLS.credentials(for: identity)
        let certificate = try NIOSSLCertificate(bytes: credentials.certificate, format: .der)
        let key = try NIOSSLPrivateKey(bytes: credentials.privateKey, format: .der)
        func configuration(_ base: TLSConfiguration) -> TLSConfiguration {
            var configuration = base
            configuration.minimumTLSVersion = .tlsv13
            configuration.certificateChain = [.certificate(certificate)]
            configuration.privateKey = .privateKey(key)
            // Verification on, so the server asks for the client's certificate; the custom
            // callback replaces the chain-of-trust check.
            configuration.certificateVerification = .noHostnameVerification
            configuration.applicationProtocols = [LibP2PTLS.alpn]
            return configuration
        }
        client = try NIOSSLContext(configuration: configuration(.makeClientConfiguration()))
        server = try NIOSSLContext(
            configuration: configuration(
                .makeServerConfiguration(
                    certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))))
    }

    /// A TLS handler for `role` whose verification hands the peer's proven host key (or why
    /// there is none) to `verified`, on the channel's loop, before the handshake completes.
    func handler(
        _ role: ConnectionUpgrade.Role,
        verified: @escaping (Result<PublicKey, LibP2PTLSError>) -> Void
    ) throws -> NIOSSLHandler {
        let callback: NIOSSLCustomVerificationCallback = { certificates, promise in
            do {
                let chain = try certificates.map { try $0.toDERBytes() }
                let key = try LibP2PTLS.verify(chain: chain)
                verified(.success(key))
                promise.succeed(.certificateVerified)
            } catch let error as LibP2PTLSError {
                verified(.failure(error))
                promise.succeed(.failed)
            } catch {
                verified(.failure(.malformedCertificate("\(error)")))
                promise.succeed(.failed)
            }
        }
        switch role {
        case .dialer:
            // No SNI: the spec reserves it for future versions.
            return try NIOSSLClientHandler(
                context: client, serverHostname: nil, customVerificationCallback: callback)
        case .listener:
            return NIOSSLServerHandler(context: server, customVerificationCallback: callback)
        }
    }
}
