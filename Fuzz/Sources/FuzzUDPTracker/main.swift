import BitTorrent
import BitTorrentTracker
import FuzzSupport
import PeerNet

nonisolated(unsafe) var service = TrackerService(configuration: TrackerConfiguration())
nonisolated(unsafe) var state = TrackerState(configuration: TrackerConfiguration())
nonisolated(unsafe) var tick: UInt32 = 1

/// BEP 15 datagrams: any bytes give a request or an error (answered only when a transaction ID
/// is present, never longer than an error); parsed announces and scrapes also go straight into
/// the tracker state (past the connection-ID check, which a fuzzer cannot forge).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzUDPTracker(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    tick &+= 1
    let sender = Endpoint(ip: .loopbackV4, port: 6881)
    var reply: [UInt8] = []
    let answered = bytes.withUnsafeBytes {
        service.serveUDP($0, from: sender, now: tick, random: UInt64(tick), into: &reply)
    }
    precondition(answered || size < 16, "a packet with a transaction ID went unanswered")
    precondition(reply.count <= 8 + 200 + 74 * 12, "reply larger than any BEP 15 answer")
    switch try? UDPTrackerPacket.parse(bytes) {
    case .announce(_, _, let announce, let urlData)?:
        precondition(urlData.count <= size, "URL data longer than the packet")
        var peers = CompactPeerLists()
        let ip =
            size % 2 == 0
            ? IPAddress(v4: UInt32(truncatingIfNeeded: size)) : IPAddress(v6High: 1, low: UInt64(size))
        _ = try? state.announce(
            announce, from: ip, families: .both, via: .udp, now: tick, random: UInt64(size), peers: &peers)
        precondition(peers.ipv4.count % 6 == 0 && peers.ipv6.count % 18 == 0, "torn compact peer list")
        precondition(peers.ipv4.count / 6 + peers.ipv6.count / 18 <= 200, "more peers than numwant allows")
    case .scrape(_, _, let hashes)?:
        precondition(state.scrape(hashes, via: .udp).count == hashes.count)
    default:
        break
    }
    if tick % 1_000 == 0 { state.expire(now: tick) }
    return 0
}

runFuzzer(fuzzUDPTracker)
