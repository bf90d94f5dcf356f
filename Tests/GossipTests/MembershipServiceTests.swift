import PeerNet
import Testing

@testable import Gossip

@Suite("SWIM members on loopback sockets", .serialized)
struct MembershipServiceTests {
    static func start(_ name: String, fallback: Bool = true) async throws -> MembershipService {
        var configuration = SWIMConfiguration(name: name, advertise: Endpoint(ip: .loopbackV4, port: 0))
        configuration.tcpFallback = fallback
        var options = MembershipService.Options(
            configuration: configuration, listen: Endpoint(ip: .loopbackV4, port: 0))
        options.seed = 7
        return try await MembershipService.start(options)
    }

    static func state(of name: String, at service: MembershipService) async -> MemberState? {
        await service.view().first { $0.name == name }?.state
    }

    static func waitFor(_ seconds: Double, _ condition: () async -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }

    @Test("a member joins another through push-pull, both list both alive; a graceful leave is seen as left")
    func joinAndLeave() async throws {
        let a = try await Self.start("a")
        let b = try await Self.start("b")
        #expect(await b.join([a.localAddress]) == 1)
        #expect(
            try await Self.waitFor(10) {
                let count = await a.view().count
                let seen = await Self.state(of: "a", at: b)
                return count == 2 && seen == .alive
            })
        await b.leave(linger: .milliseconds(500))
        await b.shutdown()
        #expect(try await Self.waitFor(10) { await Self.state(of: "b", at: a) == .left })
        await a.shutdown()
    }

    /// A member whose UDP is gone but whose TCP answers: memberlist's fallback probe keeps it
    /// alive; without the fallback it is suspected, then declared failed.
    @Test(
        "UDP blocked, TCP open: the fallback probe keeps the member alive; without it, it fails",
        arguments: [true, false])
    func tcpFallback(_ fallback: Bool) async throws {
        let a = try await Self.start("a", fallback: fallback)
        let b = try await Self.start("b")
        #expect(await b.join([a.localAddress]) == 1)
        #expect(try await Self.waitFor(10) { await Self.state(of: "b", at: a) == .alive })
        try await b.udp.close().get()
        // Suspicion with two members lasts 4 s: past it, plus a few probe rounds.
        let failed = try await Self.waitFor(15) { await Self.state(of: "b", at: a) == .dead }
        #expect(failed != fallback)
        if fallback { #expect(await a.statistics().suspicions == 0) }
        await b.shutdown()
        await a.shutdown()
    }
}
