import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// An emulated bad link made by `tun_link.py`: a network namespace joined to this one by two TUN
/// devices, every IP packet between them relayed by the script, which drops 5 % each way and
/// delays the rest by 50 ms each way (100 ms round trip), plus up to 30 ms more in the reordering
/// case. It is `tc netem` in user space: this machine's kernel has no sch_netem. TCP and uTP both
/// cross it, and the far side has no other way back. Needs root, as `ip netns` does.
struct EmulatedLink {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/tun_link.py").path

    let relay: BackgroundProgram
    /// The namespace's name (for `ip netns exec`), its address, and this side's address.
    let namespace: String, remote: String, local: String

    init(loss: Double, delayMilliseconds: Int, jitterMilliseconds: Int, seconds: Int) async throws {
        relay = try BackgroundProgram(
            Interop.python,
            [Self.script, "\(loss)", "\(delayMilliseconds)", "\(jitterMilliseconds)", "\(seconds)"])
        let ready = try await relay.waitForJSON("namespace", timeout: 20)
        namespace = ready["namespace"] as? String ?? ""
        remote = ready["remote"] as? String ?? ""
        local = ready["local"] as? String ?? ""
    }

    static var available: Bool { getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun") }
}

@Suite("Downloads over a lossy, slow, reordering link", .serialized)
struct FaultInteropTests {
    /// 4 MiB from libtorrent in the link's namespace, over uTP only or TCP only, through 5 % loss
    /// and 100 ms round trip (and reordering): the data arrives whole and right.
    @Test(
        "4 MiB from libtorrent through 5 % loss and 100 ms RTT, with and without reordering",
        arguments: [PeerTransport.utp, .tcp], [0, 30])
    func lossyLink(transport: PeerTransport, jitterMilliseconds: Int) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        try #require(Interop.required || EmulatedLink.available, "needs root and /dev/net/tun")
        let payload = try await TransferPayload(multiFile: false, size: 4 << 20)
        defer { payload.payloads.remove() }
        let link = try await EmulatedLink(
            loss: 0.05, delayMilliseconds: 50, jitterMilliseconds: jitterMilliseconds, seconds: 200)
        defer { link.relay.stop() }
        let port = freePort()
        let seeder = try BackgroundProgram(
            Interop.onPath("ip") ?? "/usr/sbin/ip",
            [
                "netns", "exec", link.namespace, Interop.python, Interop.peerScript, "seed",
                payload.torrentFile.path, payload.seedDirectory.path, "\(port)", "180", "0",
                "--host=\(link.remote)",
            ] + (transport == .utp ? ["--utp-only"] : []))
        defer { seeder.stop() }
        _ = try await seeder.waitForJSON("port", timeout: 30)
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["\(link.remote):\(port)"])
        options.listenHost = link.local
        options.transport = transport
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        let started = ContinuousClock.now
        try await withDeadline(150, "a \(transport) download over a lossy link") {
            try await client.run { _ in }
        }
        #expect(await payload.isComplete(in: target))
        print(
            "\(transport) over 5 % loss, 100 ms RTT, jitter \(jitterMilliseconds) ms: 4 MiB in \(ContinuousClock.now - started)"
        )
    }
}
