import ArgumentParser
import BitTorrent
import Foundation
import PeerNet
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A BEP 15 load generator for `Benchmarks/tracker.sh`: simulated peers on 127.0.0.x announce
/// to one UDP tracker at a fixed offered rate or at saturation, for a bounded time and count,
/// and it prints one JSON line: announces sent and answered, answer rate, p50/p99 latency.
/// Loopback only: the target must be a 127.x address.
@main
struct TrackerLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker-load", abstract: "Send BEP 15 announces to a tracker on loopback.")

    @Option(help: "Tracker address (127.x only).")
    var target = "127.0.0.1:6969"
    @Option(help: "Distinct torrents.")
    var torrents = 1_000
    @Option(help: "Distinct peers (source address 127.0.0.x and port).")
    var peers = 50_000
    @Option(help: "num_want in each announce.")
    var numwant = 50
    @Option(help: "Offered announces per second; 0 sends as fast as answers allow (saturation).")
    var rate = 0
    @Option(help: "Seconds to send for (at most 300).")
    var duration = 10.0
    @Option(help: "Stop after this many announces (0: no limit besides the time).")
    var count = 0
    @Option(help: "Source addresses 127.0.0.1 … 127.0.0.N (one socket each).")
    var sources = 20
    @Option(help: "Most announces in flight at saturation.")
    var window = 256
    @Flag(help: "Print the whitelist (info-hashes in hex) for --torrents and exit.")
    var printWhitelist = false

    func run() throws {
        if printWhitelist {
            for torrent in 0..<torrents { print(Self.infoHash(torrent).hex) }
            return
        }
        guard let address = Endpoint(target), !address.isIPv6, address.ip.isLoopback else {
            throw ValidationError("--target must be a 127.x.x.x:port address")
        }
        guard (1...250).contains(sources), peers >= 1, peers <= sources * 60_000, duration <= 300 else {
            throw ValidationError(
                "need 1-250 sources, peers at most 60000 per source, duration at most 300 s")
        }
        let load = Load(
            target: address, torrents: torrents, peers: peers, numwant: numwant, sources: sources)
        try load.connect()
        let result = load.run(
            rate: rate, duration: duration, count: count == 0 ? Int.max : count, window: max(1, window))
        print(result)
    }

    static func infoHash(_ torrent: Int) -> InfoHash {
        var generator = SplitMix64(seed: 0x7472_6163_6B65_72 &+ UInt64(torrent))
        let bytes = (0..<20).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        return InfoHash(bytes: bytes)!  // 20 bytes
    }
}

/// The sockets and the bookkeeping of one run.
final class Load: @unchecked Sendable {
    let target: Endpoint
    let torrents: Int
    let peers: Int
    let numwant: Int
    var sockets: [Int32] = []
    var connectionIDs: [UInt64] = []
    var started: [Bool]
    let hashes: [InfoHash]
    // Shared between the sender and the receiver thread.
    let answered = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let sendTimes: UnsafeMutablePointer<UInt64>
    static let ring = 1 << 20
    var histogram = [UInt32](repeating: 0, count: 200_001)  // 1 µs buckets to 200 ms, then overflow
    var firstError: String?

    init(target: Endpoint, torrents: Int, peers: Int, numwant: Int, sources: Int) {
        self.target = target
        self.torrents = torrents
        self.peers = peers
        self.numwant = numwant
        started = [Bool](repeating: false, count: peers)
        hashes = (0..<torrents).map(TrackerLoad.infoHash)
        sendTimes = .allocate(capacity: Self.ring)
        sendTimes.initialize(repeating: 0, count: Self.ring)
        for source in 0..<sources {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = (UInt32(127) << 24 | UInt32(source + 1)).bigEndian
            var size: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4)
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            var remote = sockaddr_in()
            remote.sin_family = sa_family_t(AF_INET)
            remote.sin_port = target.port.bigEndian
            remote.sin_addr.s_addr = (target.ip.v4 ?? 0).bigEndian
            _ = withUnsafePointer(to: &remote) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            sockets.append(fd)
        }
    }

    /// BEP 15 connect on every socket (3 tries, 1 s each).
    func connect() throws {
        for fd in sockets {
            var id: UInt64?
            for attempt in 0..<3 where id == nil {
                let transaction = UInt32(attempt + 1)
                let packet = UDPTrackerCodec.connectRequest(transaction: transaction)
                _ = packet.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 1_000) > 0 {
                    var buffer = [UInt8](repeating: 0, count: 64)
                    let got = recv(fd, &buffer, buffer.count, 0)
                    if got >= 16 {
                        id = try? UDPTrackerCodec.parseConnect(
                            Array(buffer[..<got]), transaction: transaction)
                    }
                }
            }
            guard let id else { throw ValidationError("the tracker did not answer a connect") }
            connectionIDs.append(id)
        }
    }

    func run(rate: Int, duration: Double, count: Int, window: Int) -> String {
        let start = Self.nanoseconds()
        let end = start + UInt64(duration * 1e9)
        let sent = Atomic<Int>(0)
        let senderDone = Atomic<Bool>(false)
        let receiver = Thread { [self] in receive(until: { senderDone.load(ordering: .acquiring) }) }
        receiver.start()
        var packet = [UInt8]()
        var number = 0
        var lastProgress = Self.nanoseconds()
        var forgiven = 0
        while number < count {
            let now = Self.nanoseconds()
            if now >= end { break }
            if rate > 0 {
                let due = start + UInt64(Double(number) * 1e9 / Double(rate))
                if now < due {
                    if due - now > 200_000 { usleep(UInt32((due - now) / 2_000)) }
                    continue
                }
            } else {
                // Closed loop: at most `window` unanswered; after 20 ms without an answer the
                // missing ones count as lost and sending goes on.
                let inFlight =
                    number - answered.load(ordering: .relaxed) - errors.load(ordering: .relaxed) - forgiven
                if inFlight >= window {
                    if now - lastProgress > 20_000_000 {
                        forgiven += inFlight
                        lastProgress = now
                    }
                    continue
                }
                lastProgress = now
            }
            let peer = number % peers
            let source = peer % sockets.count
            var request = AnnounceRequest(
                infoHash: hashes[peer % torrents], peerID: Self.peerID(peer),
                port: UInt16(1_024 + (peer / sockets.count) % 60_000))
            request.left = peer % 3 == 0 ? 0 : 1_000_000
            request.event = started[peer] ? .none : .started
            request.numWant = numwant
            request.key = UInt32(truncatingIfNeeded: peer)
            started[peer] = true
            packet = UDPTrackerCodec.announceRequest(
                request, connection: connectionIDs[source], transaction: UInt32(truncatingIfNeeded: number),
                urlData: nil)
            sendTimes[number & (Self.ring - 1)] = Self.nanoseconds()
            _ = packet.withUnsafeBytes { send(sockets[source], $0.baseAddress, $0.count, 0) }
            number += 1
            sent.store(number, ordering: .relaxed)
        }
        let elapsed = Double(Self.nanoseconds() - start) / 1e9
        usleep(300_000)  // stragglers
        senderDone.store(true, ordering: .releasing)
        while !receiver.isFinished { usleep(1_000) }
        let total = answered.load(ordering: .relaxed)
        let p50 = percentile(0.50)
        let p99 = percentile(0.99)
        var fields = [
            "\"sent\":\(number)", "\"answered\":\(total)", "\"errors\":\(errors.load(ordering: .relaxed))",
            "\"seconds\":\(String(format: "%.3f", elapsed))",
            "\"answered_per_second\":\(String(format: "%.0f", Double(total) / elapsed))",
            "\"p50_us\":\(p50)", "\"p99_us\":\(p99)",
        ]
        if let firstError {
            fields.append("\"first_error\":\"\(firstError.replacingOccurrences(of: "\"", with: "'"))\"")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func receive(until done: () -> Bool) {
        var pollers = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var buffer = [UInt8](repeating: 0, count: 2_048)
        while !done() {
            guard poll(&pollers, nfds_t(pollers.count), 20) > 0 else { continue }
            for index in pollers.indices where pollers[index].revents & Int16(POLLIN) != 0 {
                while true {
                    let got = recv(pollers[index].fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    guard got >= 8 else { break }
                    let now = Self.nanoseconds()
                    let action = UDPTrackerCodec.read32(buffer, 0)
                    let transaction = Int(UDPTrackerCodec.read32(buffer, 4))
                    if action == 1 {
                        let sentAt = sendTimes[transaction & (Self.ring - 1)]
                        let micros = Int((now &- sentAt) / 1_000)
                        histogram[min(micros, histogram.count - 1)] += 1
                        answered.add(1, ordering: .relaxed)
                    } else {
                        if firstError == nil { firstError = String(decoding: buffer[8..<got], as: UTF8.self) }
                        errors.add(1, ordering: .relaxed)
                    }
                }
            }
        }
    }

    private func percentile(_ fraction: Double) -> Int {
        let total = histogram.reduce(0) { $0 + Int($1) }
        guard total > 0 else { return 0 }
        let wanted = Int((Double(total) * fraction).rounded(.up))
        var seen = 0
        for (micros, count) in histogram.enumerated() {
            seen += Int(count)
            if seen >= wanted { return micros }
        }
        return histogram.count - 1
    }

    static func peerID(_ peer: Int) -> [UInt8] {
        Array("-LG0001-".utf8) + Array(String(format: "%012d", peer).utf8)
    }

    static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
