import Bencode
import BitTorrent
import BitTorrentTracker
import FuzzSupport
import PeerNet

nonisolated(unsafe) var service = TrackerService(configuration: TrackerConfiguration())
nonisolated(unsafe) var tick: UInt32 = 1

/// HTTP announce and scrape request targets: any bytes give a request or a `failure reason`;
/// every answer is bencode that PeerStack's own client reads back.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzHTTPTrackerQuery(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    tick &+= 1
    _ = try? HTTPTrackerRequest.parse(target: bytes, configuration: service.configuration)
    let response = service.serveHTTP(
        target: bytes, source: .loopbackV4,
        forwardedFor: String(decoding: bytes.prefix(40), as: UTF8.self),
        now: tick, random: UInt64(size), uptime: 1)
    if response.contentType == "text/plain" {
        precondition((try? BencodeDecoder().decode(response.body)) != nil, "reply is not canonical bencode")
        let announce = try? HTTPTrackerCodec.parse(response.body)
        let scrape = try? HTTPTrackerCodec.parseScrape(response.body)
        let failure = (try? BencodeDecoder().decode(response.body))?["failure reason"] != nil
        precondition(announce != nil || scrape != nil || failure, "reply the client cannot read")
    }
    return 0
}

runFuzzer(fuzzHTTPTrackerQuery)
