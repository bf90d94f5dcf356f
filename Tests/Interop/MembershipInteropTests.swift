import Foundation
import TestSupport
import Testing

/// SWIM membership between PeerStack and serf (HashiCorp's memberlist) on loopback: each joins
/// the other's cluster, views agree, failures and leaves are seen both ways.
@Suite("SWIM membership interop with serf", .serialized)
struct MembershipInteropTests {
    static let hasSerf = Interop.enabled("serf")

    struct Row: Decodable, Equatable {
        var name: String
        var address: String
        var state: String
    }

    /// A serf agent on 127.0.0.1 (gossip and RPC ports of its own).
    final class SerfAgent: Sendable {
        let name: String
        let port: Int
        let rpc: Int
        let program: BackgroundProgram

        init(_ name: String, join: Int? = nil, encrypt: String? = nil) throws {
            self.name = name
            port = freePort()
            rpc = freePort()
            var arguments = [
                "agent", "-node", name, "-bind", "127.0.0.1:\(port)", "-rpc-addr", "127.0.0.1:\(rpc)",
                "-log-level", "debug",
            ]
            if let join { arguments += ["-join", "127.0.0.1:\(join)"] }
            if let encrypt { arguments += ["-encrypt", encrypt] }
            program = try BackgroundProgram(try Interop.program("serf"), arguments)
        }

        func ready() async throws {
            _ = try await program.waitForLine(timeout: 20, "serf agent \(name) running") {
                $0.contains("Serf agent running")
            }
        }

        /// `serf members`: name, address, status.
        func members() throws -> [Row] {
            let output = try Interop.run(
                try Interop.program("serf"), ["members", "-rpc-addr", "127.0.0.1:\(rpc)"], timeout: 10)
            return output.stdout.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 3 else { return nil }
                return Row(name: String(fields[0]), address: String(fields[1]), state: String(fields[2]))
            }.sorted { $0.name < $1.name }
        }

        func leave() throws {
            try Interop.check(
                try Interop.program("serf"), ["leave", "-rpc-addr", "127.0.0.1:\(rpc)"], timeout: 30)
        }
    }

    /// `peerstack members join` on 127.0.0.1.
    final class Member: Sendable {
        let name: String
        let port: Int
        let program: BackgroundProgram

        init(_ name: String, join: [Int] = [], encrypt: String? = nil) throws {
            self.name = name
            port = freePort()
            var arguments = ["members", "join", "--name", name, "--listen", "127.0.0.1:\(port)"]
            arguments += join.map { "127.0.0.1:\($0)" }
            if let encrypt { arguments += ["--encrypt", encrypt] }
            program = try BackgroundProgram(try peerstackExecutable().path, arguments)
        }

        func ready() async throws {
            _ = try await program.waitForLine(timeout: 20, "\(name) listening") {
                $0.contains("listening on")
            }
        }
    }

    /// `peerstack members list` against any member (PeerStack or serf).
    static func list(_ port: Int, encrypt: String? = nil) throws -> [Row] {
        var arguments = ["members", "list", "--listen", "127.0.0.1:\(port)", "--json"]
        if let encrypt { arguments += ["--encrypt", encrypt] }
        let output = try Interop.run(try peerstackExecutable().path, arguments, timeout: 20)
        guard output.status == 0 else { return [] }
        return try JSONDecoder().decode([Row].self, from: Data(output.stdout.utf8)).sorted {
            $0.name < $1.name
        }
    }

    static func state(of name: String, in rows: [Row]) -> String? { rows.first { $0.name == name }?.state }

    @Test(
        "serf joins PeerStack and PeerStack joins serf: five members agree; kill -9 is seen as failed both ways, graceful leaves as left",
        .enabled(if: hasSerf), .timeLimit(.minutes(4)))
    func cluster() async throws {
        // ps1 starts the cluster; serf s1 joins PeerStack; PeerStack ps2 joins serf; s2 and s3
        // join through PeerStack members.
        let ps1 = try Member("ps1")
        try await ps1.ready()
        let s1 = try SerfAgent("s1", join: ps1.port)
        try await s1.ready()
        let ps2 = try Member("ps2", join: [s1.port])
        try await ps2.ready()
        let s2 = try SerfAgent("s2", join: ps2.port)
        let s3 = try SerfAgent("s3", join: ps1.port)
        try await s2.ready()
        try await s3.ready()
        let names = ["ps1", "ps2", "s1", "s2", "s3"]
        let ports = ["ps1": ps1.port, "ps2": ps2.port, "s1": s1.port, "s2": s2.port, "s3": s3.port]
        let everyone = names.map { Row(name: $0, address: "127.0.0.1:\(ports[$0]!)", state: "alive") }

        // Every member lists every member alive, the same on both sides.
        let agreed = try await eventually(timeout: 30) {
            try Self.list(ps1.port) == everyone && Self.list(ps2.port) == everyone && s1.members() == everyone
                && s2.members() == everyone && s3.members() == everyone
        }
        #expect(
            agreed,
            "ps1 \((try? Self.list(ps1.port)) ?? []), ps2 \((try? Self.list(ps2.port)) ?? []), s1 \((try? s1.members()) ?? []), s2 \((try? s2.members()) ?? [])"
        )
        // serf's own view read through memberlist's push-pull by `members list` matches too.
        #expect(try Self.list(s1.port) == everyone)

        // kill -9 a serf agent: PeerStack declares it failed within memberlist's bound (a probe
        // round, then at most the unconfirmed suspicion timeout: 6 × 4 × max(1, log10 5) s).
        let killed = ContinuousClock.now
        s2.program.signal(SIGKILL)
        let failed = try await eventually(timeout: 40) {
            try Self.state(of: "s2", in: Self.list(ps1.port)) == "failed"
                && Self.state(of: "s2", in: Self.list(ps2.port)) == "failed"
        }
        let detection = ContinuousClock.now - killed
        #expect(failed, "ps1 sees \((try? Self.list(ps1.port)) ?? [])")
        #expect(detection < .seconds(30), "detected in \(detection)")
        print("serf agent killed: PeerStack members saw it failed after \(detection)")
        #expect(try await eventually(timeout: 40) { Self.state(of: "s2", in: try s1.members()) == "failed" })

        // kill -9 a PeerStack member: serf declares it failed.
        ps2.program.signal(SIGKILL)
        #expect(
            try await eventually(timeout: 40) {
                try Self.state(of: "ps2", in: s1.members()) == "failed"
                    && Self.state(of: "ps2", in: Self.list(ps1.port)) == "failed"
            }, "s1 sees \((try? s1.members()) ?? [])")

        // A graceful serf leave is left at PeerStack; PeerStack's own (Ctrl-C) is left at serf.
        try s3.leave()
        #expect(
            try await eventually(timeout: 20) { Self.state(of: "s3", in: try Self.list(ps1.port)) == "left" },
            "ps1 sees \((try? Self.list(ps1.port)) ?? [])")
        ps1.program.signal(SIGINT)
        #expect(
            try await eventually(timeout: 20) { Self.state(of: "ps1", in: try s1.members()) == "left" },
            "s1 sees \((try? s1.members()) ?? [])")
        #expect(try await ps1.program.waitForExit(timeout: 10) == 0)
        // Nothing PeerStack sent was refused by serf's memberlist.
        for agent in [s1, s3] {
            let complaints = agent.program.text.split(separator: "\n").filter {
                $0.contains("[ERR] memberlist") || $0.contains("Failed to decode") || $0.contains("Checksum")
            }
            #expect(complaints.isEmpty, "\(agent.name): \(complaints)")
        }
    }

    @Test(
        "an encrypted cluster (AES-GCM keyring): serf and PeerStack with the key agree; a member without it is refused",
        .enabled(if: hasSerf), .timeLimit(.minutes(2)))
    func encrypted() async throws {
        let key = Data((0..<32).map { UInt8($0 * 7 % 256) }).base64EncodedString()
        let ps1 = try Member("ps1", encrypt: key)
        try await ps1.ready()
        let s1 = try SerfAgent("s1", join: ps1.port, encrypt: key)
        try await s1.ready()
        let ps2 = try Member("ps2", join: [s1.port], encrypt: key)
        try await ps2.ready()
        let expected = ["ps1": ps1.port, "ps2": ps2.port, "s1": s1.port].sorted { $0.key < $1.key }.map {
            Row(name: $0.key, address: "127.0.0.1:\($0.value)", state: "alive")
        }
        #expect(
            try await eventually(timeout: 30) {
                try Self.list(ps1.port, encrypt: key) == expected && s1.members() == expected
            }, "ps1 \((try? Self.list(ps1.port, encrypt: key)) ?? []), s1 \((try? s1.members()) ?? [])")
        // Without the key: no view, and the intruder never appears.
        #expect(try Self.list(s1.port).isEmpty)
        let intruder = try Member("intruder", join: [s1.port])
        #expect(try await intruder.program.waitForExit(timeout: 20) == 1)
        #expect(try s1.members().map(\.name) == ["ps1", "ps2", "s1"])
    }
}
