import Foundation
import PeerNet
import PeerSim
import Testing

@testable import Gossip

@Suite("SWIM membership: the member as a state machine, in PeerSim")
struct SWIMTests {
    static func member(_ index: Int, now: Duration = .zero) -> SWIMMember {
        SWIMMember(
            configuration: SWIMConfiguration(
                name: SWIMSimulation.name(index), advertise: SWIMSimulation.endpoint(index)),
            now: now, seed: UInt64(index))
    }

    static func accusation(_ node: Int, incarnation: UInt32, from: Int) -> MemberAccusation {
        MemberAccusation(
            incarnation: incarnation, node: SWIMSimulation.name(node), from: SWIMSimulation.name(from))
    }

    @Test("members knowing only a seed converge through push-pull and gossip")
    func joins() {
        var simulation = Simulation<SWIMSimulation.Node>(links: LinkModel(), seed: 3)
        for index in 0..<30 { simulation.add(SWIMSimulation.Node(member: Self.member(index))) }
        for index in 1..<30 {
            simulation.act(on: index) { node, context in
                node.perform(node.member.join([SWIMSimulation.endpoint(0)]), &context)
                context.wake(at: node.member.nextDeadline)
            }
        }
        let converged = simulation.run(until: .seconds(60)) { simulation in
            simulation.nodes.allSatisfy {
                $0.member.view.count == 30 && $0.member.view.allSatisfy { $0.state == .alive }
            }
        }
        #expect(converged, "views: \(simulation.nodes.map { $0.member.view.count })")
    }

    @Test(
        "a crash in a 40-member cluster: every member declares it failed within SWIM's bound, and nobody else"
    )
    func crash() throws {
        var simulation = SWIMSimulation.cluster(40, links: LinkModel(), seed: 5)
        simulation.advance(to: .seconds(5))
        simulation.remove(7)
        let start = simulation.now
        let detected = simulation.run(until: start + .seconds(60)) { simulation in
            simulation.nodes.indices.allSatisfy {
                !simulation.alive[$0] || simulation.nodes[$0].failedAt["m7"] != nil
            }
        }
        #expect(detected)
        let latest = try #require(simulation.nodes.compactMap { $0.failedAt["m7"] }.max())
        // A probe round (≤ 40 s round robin, but ≈ 1.6 s on average), the probe, then a
        // suspicion timeout of 4 × log10(40) s to 6 × that: well inside 40 s.
        #expect(latest - start < .seconds(40))
        for (index, node) in simulation.nodes.enumerated() where index != 7 {
            #expect(
                node.failedAt.keys.sorted() == ["m7"], "m\(index) declared \(node.failedAt.keys.sorted())")
        }
        #expect(simulation.nodes[0].member.view.first { $0.name == "m7" }?.state == .dead)
    }

    @Test("a suspected member refutes with a newer incarnation, and its accusers take it back")
    func refute() throws {
        var accused = Self.member(1)
        var other = Self.member(2)
        _ = other.merge(accused.localState(join: true, now: .zero), now: .zero)
        _ = accused.merge(other.localState(join: true, now: .zero), now: .zero)
        // Member 2 suspects member 1.
        let suspect = MemberlistMessage.suspect(Self.accusation(1, incarnation: 1, from: 2))
        let events = other.receive([suspect], from: SWIMSimulation.endpoint(3), now: .seconds(1))
        #expect(events.contains { if case .event(.suspected) = $0 { true } else { false } })
        // Member 1 hears of it and refutes: incarnation 2, its health score worsens.
        _ = accused.receive([suspect], from: SWIMSimulation.endpoint(2), now: .seconds(1))
        #expect(accused.incarnation == 2)
        #expect(accused.awareness == 1)
        #expect(accused.statistics.refutations == 1)
        // Its next packet carries the refutation; member 2 takes member 1 back as alive.
        let actions = accused.tick(now: .seconds(2))
        let packets = actions.compactMap { action -> [[UInt8]]? in
            if case .send(let messages, _, _) = action { return messages }
            return nil
        }
        let alive = packets.joined().compactMap { try? MemberlistCodec.decode($0) }.first {
            if case .alive(let alive) = $0 { alive.node == "m1" && alive.incarnation == 2 } else { false }
        }
        let refutation = try #require(alive)
        _ = other.receive([refutation], from: SWIMSimulation.endpoint(1), now: .seconds(2))
        #expect(other.view.first { $0.name == "m1" }?.state == .alive)
        #expect(other.view.first { $0.name == "m1" }?.incarnation == 2)
        // Old news does not undo it: a suspicion at incarnation 1 is ignored now.
        _ = other.receive([suspect], from: SWIMSimulation.endpoint(3), now: .seconds(3))
        #expect(other.view.first { $0.name == "m1" }?.state == .alive)
    }

    @Test("suspicion: memberlist's timeouts, shortened on a log scale by independent confirmations")
    func suspicion() {
        let member = Self.member(0)
        // 4 × max(1, log10 n) × 1 s.
        #expect(member.suspicionTimeout(nodes: 5) == .seconds(4))
        #expect(member.suspicionTimeout(nodes: 1000) == .seconds(12))
        var suspicion = SWIMMember.Suspicion(
            from: "a", expected: 2, minimum: .seconds(4), maximum: .seconds(24), now: .zero)
        #expect(suspicion.deadline == .seconds(24))
        // The accuser again is no confirmation.
        let confirmedA = suspicion.confirm("a")
        #expect(!confirmedA)
        let confirmedB = suspicion.confirm("b")
        #expect(confirmedB)
        // One of two expected: 24 − 20 × log(2)/log(3) ≈ 11.38 s.
        #expect(abs(suspicion.deadline.seconds - (24 - 20 * log(2) / log(3))) < 0.001)
        let confirmedC = suspicion.confirm("c")
        #expect(confirmedC)
        #expect(suspicion.deadline == .seconds(4))
        let confirmedD = suspicion.confirm("d")
        #expect(!confirmedD)
    }

    @Test("a graceful leave: serf's leave intent, then our own dead; others record left, not failed")
    func leave() throws {
        var simulation = SWIMSimulation.cluster(10, links: LinkModel(), seed: 9)
        simulation.advance(to: .seconds(3))
        let actions = simulation.act(on: 4) { node, context in
            let actions = node.member.leave(now: context.now)
            node.perform(actions, &context)
            return actions
        }
        let first = try #require(
            actions.compactMap { action -> [[UInt8]]? in
                if case .send(let messages, _, _) = action { return messages }
                return nil
            }.first)
        let decoded = first.compactMap { try? MemberlistCodec.decode($0) }
        // The first packets carry serf's leave intent alone; our dead follows in later gossip.
        let intent = decoded.contains {
            if case .user(let payload) = $0 { payload.first == 0 } else { false }
        }
        let dead = decoded.contains { if case .dead = $0 { true } else { false } }
        #expect(intent && !dead, "\(decoded)")
        simulation.run(until: .seconds(10))
        simulation.remove(4)
        for (index, node) in simulation.nodes.enumerated() where index != 4 {
            #expect(node.member.view.first { $0.name == "m4" }?.state == .left, "m\(index)")
        }
    }

    @Test("Lifeguard: unanswered probes raise the local health score, an answered one lowers it")
    func awareness() throws {
        var member = Self.member(0)
        _ = member.merge(
            PushPull(
                join: true,
                nodes: (1...6).map {
                    PushNodeState(
                        name: SWIMSimulation.name($0), address: SWIMSimulation.endpoint($0).ip.bytes,
                        port: 7946, meta: [],
                        incarnation: 1, state: .alive, versions: [1, 5, 2, 2, 5, 5])
                }), now: .zero)
        // Nobody answers: a failed probe adds one per nack that did not come (three helpers).
        var now = Duration.zero
        while member.awareness < 2 && now < .seconds(30) {
            now = member.nextDeadline
            _ = member.tick(now: now)
        }
        #expect(member.awareness == 3)
        #expect(member.statistics.suspicions == 1)
        // The next probe is answered: the score drops by one.
        var sequence: UInt32?
        while sequence == nil && now < .seconds(60) {
            now = member.nextDeadline
            for case .send(let messages, _, _) in member.tick(now: now) {
                for case .ping(let ping)? in messages.map({ try? MemberlistCodec.decode($0) }) {
                    sequence = ping.sequence
                }
            }
        }
        let answered = try #require(sequence)
        let before = member.awareness
        _ = member.receive(
            [.ack(sequence: answered, payload: [])], from: SWIMSimulation.endpoint(1), now: now)
        #expect(member.awareness == before - 1)
    }

    @Test("hostile news: a bad address, an alive claiming another's address, a flood of names past the cap")
    func hostile() {
        var configuration = SWIMConfiguration(name: "me", advertise: SWIMSimulation.endpoint(0))
        configuration.maxMembers = 50
        var member = SWIMMember(configuration: configuration, now: .zero, seed: 1)
        let bad = MemberAlive(incarnation: 1, node: "x", address: [1, 2, 3], port: 1, meta: [], versions: [])
        _ = member.receive([.alive(bad)], from: SWIMSimulation.endpoint(9), now: .zero)
        #expect(member.view.count == 1)
        #expect(member.statistics.malformed == 1)
        let flood = (0..<500).map {
            MemberlistMessage.alive(
                MemberAlive(
                    incarnation: 1, node: "n\($0)", address: SWIMSimulation.endpoint($0 + 1).ip.bytes,
                    port: 7946, meta: [],
                    versions: [1, 5, 2, 2, 5, 5]))
        }
        _ = member.receive(flood, from: SWIMSimulation.endpoint(9), now: .zero)
        #expect(member.view.count == 50)
        // Once invented members are found dead, a real newcomer takes the longest-dead one's place.
        for index in 0..<10 {
            _ = member.receive(
                [.dead(MemberAccusation(incarnation: 1, node: "n\(index)", from: "x"))],
                from: SWIMSimulation.endpoint(9), now: .seconds(Double(index + 1)))
        }
        let newcomer = MemberAlive(
            incarnation: 1, node: "real", address: SWIMSimulation.endpoint(4000).ip.bytes, port: 7946,
            meta: [],
            versions: [1, 5, 2, 2, 5, 5])
        _ = member.receive([.alive(newcomer)], from: SWIMSimulation.endpoint(4000), now: .seconds(20))
        #expect(member.view.count == 50)
        #expect(member.view.contains { $0.name == "real" })
        #expect(!member.view.contains { $0.name == "n0" })
        // A live member's name with another address is refused (memberlist's conflict rule).
        let claim = MemberAlive(
            incarnation: 9, node: "n20", address: SWIMSimulation.endpoint(999).ip.bytes, port: 7946, meta: [],
            versions: [])
        _ = member.receive([.alive(claim)], from: SWIMSimulation.endpoint(999), now: .zero)
        #expect(member.view.first { $0.name == "n20" }?.endpoint == SWIMSimulation.endpoint(21))
        // A ping for another name is not answered.
        #expect(
            member.receive(
                [.ping(MemberPing(sequence: 1, node: "someone-else"))], from: SWIMSimulation.endpoint(5),
                now: .zero
            )
            .isEmpty)
    }

    @Test("the SWIM measurement: crashes found near the prediction, no live member failed at 1 % loss")
    func measurement() throws {
        var configuration = SWIMSimulationConfiguration()
        configuration.nodes = 60
        configuration.losses = [0.01]
        configuration.crashes = 2
        configuration.quiet = .seconds(30)
        let report = try #require(SWIMSimulation.run(configuration).first)
        #expect(report.detected == 2)
        #expect(report.falseFailures == 0)
        let first = try #require(report.detectionFirst)
        #expect(first > 2 && first < report.predictedDetection * 2, "first detection \(first) s")
    }
}
