import Libp2p
import Multiformats
import NIOPosix
import PeerCrypto
import TestSupport
import Testing

@Suite("libp2p host on loopback")
struct HostTests {
    static let echo = "/peerstack/echo/1.0.0"

    /// The loops of these tests' hosts, apart from the shared group that other suites load.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    /// A host listening on a free loopback port, serving the echo protocol.
    static func host(_ type: KeyType = .ed25519, security: [SecurityProtocol] = [.noise, .tls]) async throws
        -> Libp2pHost
    {
        var configuration = Libp2pHost.Configuration()
        configuration.security = security
        let host = Libp2pHost(
            identity: try PrivateKey.generate(type), configuration: configuration, group: group)
        host.handle(echo) { stream in
            while let chunk = try await stream.read() { try await stream.write(chunk) }
            stream.closeWrite()
        }
        try await host.listen(try Multiaddr("/ip4/127.0.0.1/tcp/0"))
        return host
    }

    @Test(
        "two hosts: Noise or TLS 1.3, yamux, identify, ping and a 4 MiB echo",
        arguments: SecurityProtocol.allCases)
    func connectIdentifyPingEcho(security: SecurityProtocol) async throws {
        let server = try await Self.host()
        let client = try await Self.host(.ecdsa, security: [security])
        defer {
            Task {
                await server.close()
                await client.close()
            }
        }
        let address = try #require(server.listenAddresses.first)
        let connection = try await client.connect(address)
        #expect(connection.remotePeer == server.peerID)
        #expect(connection.security == security)
        #expect(connection.muxer == "/yamux/1.0.0")

        let info = try await client.identify(connection)
        #expect(info.agentVersion?.hasPrefix("peerstack/") == true)
        #expect(info.protocols.contains(Self.echo))
        #expect(info.protocols.contains(Ping.protocolID))
        #expect(info.listenAddresses.contains(address.withoutPeer))
        #expect(info.key(matching: server.peerID) != nil)

        let times = try await client.ping(connection, count: 3)
        #expect(times.count == 3)

        let payload = SeededGenerator.bytes(4 << 20, seed: 7)
        let stream = try await connection.openStream(["/nothing/1.0.0", Self.echo])
        #expect(stream.protocolID == Self.echo)
        async let sent: Void = {
            try await stream.write(payload)
            stream.closeWrite()
        }()
        let back = try await stream.readAll(limit: 8 << 20)
        try await sent
        #expect(back == payload)
    }

    @Test(
        "dialling a peer ID that is not the listener's fails with a clear error",
        arguments: SecurityProtocol.allCases)
    func wrongPeer(security: SecurityProtocol) async throws {
        let server = try await Self.host()
        let client = try await Self.host(security: [security])
        defer {
            Task {
                await server.close()
                await client.close()
            }
        }
        let other = try PrivateKey.generate().publicKey.peerID
        let port = try #require(server.listenAddresses.first).withoutPeer
        let address = Multiaddr(port.components + [.p2p(other.multihash.bytes)])
        await #expect(throws: Libp2pError.upgrade(.unexpectedPeer(expected: other, got: server.peerID))) {
            _ = try await client.connect(address)
        }
    }

    @Test("a protocol the peer does not serve is refused by name")
    func unsupported() async throws {
        let server = try await Self.host()
        let client = try await Self.host()
        defer {
            Task {
                await server.close()
                await client.close()
            }
        }
        let connection = try await client.connect(try #require(server.listenAddresses.first))
        await #expect(throws: Libp2pError.protocolNotSupported(["/nope/1.0.0"])) {
            _ = try await connection.openStream(["/nope/1.0.0"])
        }
        // The connection is still good for other streams.
        #expect(try await client.ping(connection).count == 1)
    }
}
