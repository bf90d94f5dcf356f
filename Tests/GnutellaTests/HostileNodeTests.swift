import Foundation
import Gnutella
import NIOPosix
import PeerNet
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback TCP client for hostile peers (a few lines of POSIX, bounded by timeouts).
final class RawPeer {
    let fd: Int32

    init?(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Bytes until `done` says enough, the peer closes, or the timeout.
    func receive(until done: ([UInt8]) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while !done(out) {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            out += buffer[0..<count]
        }
        return out
    }

    /// Whether the server closed the connection (reads end with 0) within the timeout.
    func closedByServer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }

    /// The 0.6 handshake as a leaf without deflate; whether it was accepted.
    func handshakeAsLeaf() -> Bool {
        send(Array("GNUTELLA CONNECT/0.6\r\nUser-Agent: hostile\r\nX-Ultrapeer: False\r\n\r\n".utf8))
        let reply = receive { $0.count >= 4 && Array($0.suffix(4)) == [13, 10, 13, 10] }
        guard String(decoding: reply, as: UTF8.self).hasPrefix("GNUTELLA/0.6 200") else { return false }
        return send(Array("GNUTELLA/0.6 200 OK\r\n\r\n".utf8))
    }
}

@Suite("Hostile peers against a Gnutella ultrapeer", .serialized)
struct HostileNodeTests {
    @Test(
        "silent sockets, a query flood and an oversized descriptor cost bounded work; an honest leaf is served"
    )
    func hostile() async throws {
        let events = NodeTests.Events()
        let ultrapeer = try await NodeTests.start(ultrapeer: true, events: events)
        let port = try #require(ultrapeer.localAddress?.port)
        let sharerEvents = NodeTests.Events()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("la la la".utf8).write(to: directory.appendingPathComponent("honest song.ogg"))
        let sharer = try await NodeTests.start(
            ultrapeer: false, shares: try ShareEntry.scan(.init(directory.path)), events: sharerEvents)
        let searcherEvents = NodeTests.Events()
        let searcher = try await NodeTests.start(ultrapeer: false, events: searcherEvents)

        // 100 connections that never say a word.
        let silent = (0..<100).compactMap { _ in RawPeer(port: port) }
        #expect(silent.count == 100)
        // One that floods queries after a proper handshake, one that announces a 1 MiB payload.
        let flooder = try #require(RawPeer(port: port))
        #expect(flooder.handshakeAsLeaf())
        let liar = try #require(RawPeer(port: port))
        #expect(liar.handshakeAsLeaf())
        liar.send(GUID(random: Array(0..<16)).bytes + [0x80, 7, 0, 0, 0, 0x10, 0])
        #expect(liar.closedByServer(), "a 1 MiB payload length did not close the connection")

        let flood = Task.detached {
            var sent = 0
            for n in 0..<5_000 {
                let query = Descriptor(
                    guid: GUID(
                        random: (0..<16).map { UInt8(truncatingIfNeeded: n >> ($0 % 3 * 8)) &+ UInt8($0) }),
                    ttl: 7, .query(Query(text: "flood \(n)")))
                guard flooder.send(query.encoded()) else { break }
                sent += 1
            }
            return (sent, flooder.closedByServer())
        }
        // Meanwhile the honest leaves join and search.
        sharer.connect(to: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: port))
        searcher.connect(to: Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: port))
        try await NodeTests.wait(15, "the honest leaves to connect") {
            let sharing = try await sharer.connectionCount()
            let searching = try await searcher.connectionCount()
            return sharing == 1 && searching == 1
        }
        var found = false
        let deadline = ContinuousClock.now + .seconds(20)
        while !found, ContinuousClock.now < deadline {
            _ = try await searcher.search("honest song")
            try? await Task.sleep(for: .milliseconds(500))
            found = !searcherEvents.hits.withLock { $0 }.isEmpty
        }
        #expect(found, "the honest leaf found nothing")
        let (sent, dropped) = await flood.value
        #expect(sent > 1_000)
        #expect(dropped, "the query flood was not cut off")
        _ = silent
        for node in [ultrapeer, sharer, searcher] { await node.shutdown() }
    }
}
