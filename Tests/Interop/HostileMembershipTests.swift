import Foundation
import TestSupport
import Testing

/// `peerstack members join` contains hostile memberlist peers while serf agents, honest
/// members, join it and keep it alive.
@Suite("A PeerStack member contains hostile memberlist peers", .serialized)
struct HostileMembershipTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/memberlist_attack.py").path

    @Test(
        "300 silent sockets, ten tricklers, 4 GiB and LZW-bomb streams and 40,000 bad datagrams: serf still joins, nobody thinks the member failed, memory stays bounded",
        .enabled(if: MembershipInteropTests.hasSerf), .timeLimit(.minutes(3)))
    func attacked() async throws {
        let member = try MembershipInteropTests.Member("target")
        try await member.ready()
        let s1 = try MembershipInteropTests.SerfAgent("s1", join: member.port)
        try await s1.ready()
        #expect(try await eventually(timeout: 20) { try MembershipInteropTests.list(member.port).count == 2 })
        let before = member.program.residentBytes ?? 0
        let attacker = try BackgroundProgram(Interop.pipPython, [Self.script, "\(member.port)", "20"])
        let program = member.program
        let sampler = Task {
            try await program.peakResidentBytes { _ = try await attacker.waitForExit(timeout: 60) }
        }
        // Let the attack build up, then an honest serf agent joins through the member.
        try await Task.sleep(for: .seconds(5))
        let s2 = try MembershipInteropTests.SerfAgent("s2", join: member.port)
        try await s2.ready()
        let joined = try await eventually(timeout: 15) {
            try s2.members().map(\.name) == ["s1", "s2", "target"]
        }
        let peak = try await sampler.value
        let report = attacker.text
        #expect(joined, "serf joined through the member under attack; attacker: \(report)")
        let counts =
            (try? JSONSerialization.jsonObject(
                with: Data(report.split(separator: "\n").last.map(String.init)?.utf8 ?? "".utf8)))
            as? [String: Int] ?? [:]
        #expect(
            (counts["silent"] ?? 0) >= 200 && (counts["datagrams"] ?? 0) >= 10_000,
            "the attack ran: \(report)")
        // serf never declared the member failed, and the member still answers.
        #expect(MembershipInteropTests.state(of: "target", in: try s1.members()) == "alive")
        #expect(try MembershipInteropTests.list(member.port).map(\.name) == ["s1", "s2", "target"])
        #expect(s1.program.text.contains("EventMemberFailed: target") == false)
        // Buffers are bounded by stream limits and eviction, not by what attackers announce.
        #expect(
            peak - before < 96 << 20,
            "RSS grew by \((peak - before) >> 20) MiB (\(before >> 20) → \(peak >> 20) MiB)")
        print(
            "memberlist attack: \(report.trimmingCharacters(in: .whitespacesAndNewlines)); member RSS \(before >> 20) → \(peak >> 20) MiB"
        )
    }
}
