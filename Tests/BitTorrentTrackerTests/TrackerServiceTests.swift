import Bencode
import BitTorrent
import Crypto
import PeerNet
import TestSupport
import Testing

@testable import BitTorrentTracker

/// Drives the sans-I/O tracker with the project's own client codecs (BitTorrent's
/// `HTTPTrackerCodec` / `UDPTrackerCodec`), so both sides of BEP 3, 15, 23, 48 are checked.
struct TrackerServiceTests {
    let hash = InfoHash(String(repeating: "ab", count: 20))!
    let key = SymmetricKey(size: .bits256)

    func request(port: UInt16, left: Int64 = 100, event: AnnounceEvent = .started, numWant: Int = 50)
        -> AnnounceRequest
    {
        var request = AnnounceRequest(
            infoHash: hash, peerID: Array(repeating: UInt8(port & 0xFF), count: 20), port: port)
        request.left = left
        request.event = event
        request.numWant = numWant
        return request
    }

    func http(
        _ service: inout TrackerService, _ request: AnnounceRequest,
        from ip: IPAddress = IPAddress(v4: 0x7F00_0001),
        now: UInt32 = 10
    ) throws -> AnnounceResponse {
        let target = "/announce?" + HTTPTrackerCodec.query(for: request, existingQuery: nil)
        let response = service.serveHTTP(
            target: target.utf8, source: ip, forwardedFor: nil, now: now, random: 7, uptime: 1)
        #expect(response.status == 200)
        return try HTTPTrackerCodec.parse(response.body)
    }

    @Test func httpAnnouncesListOtherPeersAndCountSeeds() throws {
        var service = TrackerService(configuration: TrackerConfiguration())
        let first = try http(&service, request(port: 6001, left: 0))
        #expect(first.peers.isEmpty)
        #expect(first.seeders == 1 && first.leechers == 0)
        #expect(first.interval == 1_800 && first.minInterval == 300)
        let second = try http(&service, request(port: 6002))
        #expect(second.peers == [Endpoint("127.0.0.1:6001")!])
        #expect(second.seeders == 1 && second.leechers == 1)
        // A seed is given leechers only.
        _ = try http(&service, request(port: 6003, left: 0))
        let seed = try http(&service, request(port: 6001, left: 0, event: .none))
        #expect(seed.peers == [Endpoint("127.0.0.1:6002")!])
        // IPv6 peers come in `peers6`.
        let six = try http(&service, request(port: 6004), from: IPAddress("2001:db8::1")!)
        #expect(Set(six.peers.map(\.description)) == ["127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"])
        let after = try http(&service, request(port: 6005))
        #expect(after.peers.contains(Endpoint("[2001:db8::1]:6004")!))
    }

    @Test func stoppedRemovesCompletedCountsOnceAndNumWantIsCapped() throws {
        var configuration = TrackerConfiguration()
        configuration.maxNumWant = 5
        var service = TrackerService(configuration: configuration)
        for port in 7000..<7020 { _ = try http(&service, request(port: UInt16(port))) }
        #expect(try http(&service, request(port: 7100, numWant: 1_000)).peers.count == 5)
        #expect(try http(&service, request(port: 7101, numWant: 2)).peers.count == 2)
        _ = try http(&service, request(port: 7000, left: 0, event: .completed))
        _ = try http(&service, request(port: 7000, left: 0, event: .completed))
        _ = try http(&service, request(port: 7001, event: .stopped))
        // A leecher that stops with nothing left also completed (aria2 sends only `stopped`).
        _ = try http(&service, request(port: 7002, left: 0, event: .stopped))
        let stats = service.state.counts([InfoHashKey(hash)])
        #expect(stats == [ScrapeStats(seeders: 1, completed: 2, leechers: 19)])
        #expect(service.state.peerTotal == 20)
    }

    @Test func peersExpireWhenTheyStopAnnouncing() throws {
        var service = TrackerService(configuration: TrackerConfiguration())
        _ = try http(&service, request(port: 1), now: 10)
        _ = try http(&service, request(port: 2), now: 2_000)
        #expect(service.expire(now: 2_600) == 0)
        #expect(service.expire(now: 2_711) == 1)
        #expect(service.state.peerTotal == 1)
        #expect(service.expire(now: 5_000) == 1)
        #expect(service.state.torrentCount == 0)
    }

    @Test func everyBadAnnounceNamesTheParameter() {
        var service = TrackerService(configuration: TrackerConfiguration())
        let valid =
            "info_hash=" + String(repeating: "%AB", count: 20) + "&peer_id="
            + String(repeating: "x", count: 20)
        let cases: [(String, String)] = [
            ("/announce?peer_id=" + String(repeating: "x", count: 20) + "&port=1", "'info_hash'"),
            ("/announce?info_hash=abc&port=1", "'info_hash': 3 bytes"),
            ("/announce?" + valid, "'port'"),
            ("/announce?" + valid + "&port=70000", "'port': must be"),
            ("/announce?" + valid + "&port=1&left=-4", "'left'"),
            ("/announce?" + valid + "&port=1&event=paused", "'event'"),
            ("/announce?" + valid + "&port=1&numwant=x", "'numwant'"),
            ("/announce?" + valid + "&port=1&uploaded=%zz", "bad percent-encoding"),
            ("/scrape", "full scrape is off"),
        ]
        for (target, expected) in cases {
            let response = service.serveHTTP(
                target: target.utf8, source: IPAddress(v4: 1), forwardedFor: nil, now: 1, random: 0, uptime: 0
            )
            let reason = (try? BencodeDecoder().decode(response.body))?["failure reason"]?.string ?? ""
            #expect(reason.contains(expected), "\(target) -> \(reason)")
        }
        #expect(
            service.serveHTTP(
                target: "/nothing".utf8, source: IPAddress(v4: 1), forwardedFor: nil, now: 1, random: 0,
                uptime: 0
            )
            .status == 404)
    }

    @Test func multiScrapeAndStats() throws {
        var service = TrackerService(configuration: TrackerConfiguration())
        _ = try http(&service, request(port: 1, left: 0))
        _ = try http(&service, request(port: 2))
        let other = InfoHash(String(repeating: "01", count: 20))!
        let target = "/scrape?" + HTTPTrackerCodec.scrapeQuery([hash, other], existingQuery: nil)
        let response = service.serveHTTP(
            target: target.utf8, source: IPAddress(v4: 1), forwardedFor: nil, now: 1, random: 0, uptime: 0)
        let stats = try HTTPTrackerCodec.parseScrape(response.body)
        #expect(stats[hash] == ScrapeStats(seeders: 1, completed: 0, leechers: 1))
        #expect(stats[other] == ScrapeStats(seeders: 0, completed: 0, leechers: 0))
        let json = service.serveHTTP(
            target: "/stats".utf8, source: IPAddress(v4: 1), forwardedFor: nil, now: 1, random: 0, uptime: 5)
        #expect(json.contentType == "application/json")
        #expect(
            String(decoding: json.body, as: UTF8.self).hasPrefix("{\"torrents\":1,\"peers\":2,\"seeders\":1,")
        )
        let text = service.serveHTTP(
            target: "/stats?format=prometheus".utf8, source: IPAddress(v4: 1), forwardedFor: nil, now: 1,
            random: 0,
            uptime: 5)
        #expect(
            String(decoding: text.body, as: UTF8.self).contains(
                "peerstack_tracker_announces_total{transport=\"http\"} 2\n"))
    }

    @Test func claimedAddressesNeedTrust() throws {
        var target = request(port: 9)
        target.event = .started
        let query = "/announce?" + HTTPTrackerCodec.query(for: target, existingQuery: nil) + "&ip=10.1.2.3"
        var open = TrackerService(configuration: TrackerConfiguration())
        _ = open.serveHTTP(
            target: query.utf8, source: IPAddress(v4: 0x7F00_0001), forwardedFor: "10.9.9.9", now: 1,
            random: 0,
            uptime: 0)
        #expect(try http(&open, request(port: 10)).peers == [Endpoint("127.0.0.1:9")!])
        var configuration = TrackerConfiguration()
        configuration.trustedProxies = [IPAddress(v4: 0x7F00_0001)]
        var proxied = TrackerService(configuration: configuration)
        _ = proxied.serveHTTP(
            target: query.utf8, source: IPAddress(v4: 0x7F00_0001), forwardedFor: "1.1.1.1, 10.9.9.9", now: 1,
            random: 0, uptime: 0)
        #expect(try http(&proxied, request(port: 10)).peers == [Endpoint("10.9.9.9:9")!])
        configuration.trustClaimedIP = true
        var trusting = TrackerService(configuration: configuration)
        _ = trusting.serveHTTP(
            target: query.utf8, source: IPAddress(v4: 0x7F00_0002), forwardedFor: nil, now: 1, random: 0,
            uptime: 0)
        #expect(try http(&trusting, request(port: 10)).peers == [Endpoint("10.1.2.3:9")!])
    }

    @Test func whitelistRefusesOthersAndReloadDropsTorrents() throws {
        var configuration = TrackerConfiguration()
        configuration.admission = .whitelist([InfoHashKey(hash)])
        var service = TrackerService(configuration: configuration)
        _ = try http(&service, request(port: 1))
        var stranger = request(port: 2)
        stranger.infoHash = InfoHash(String(repeating: "cd", count: 20))!
        #expect(throws: TrackerError.failure("torrent \(stranger.infoHash.hex) is not allowed here")) {
            try http(&service, stranger)
        }
        service.setAdmission(.whitelist([]))
        #expect(service.state.torrentCount == 0 && service.state.peerTotal == 0)
        let list = try Whitelist.parse(
            "# comment\n\n\(hash.hex)  name\n\(stranger.infoHash.hex.uppercased())\r\n")
        #expect(list == [InfoHashKey(hash), InfoHashKey(stranger.infoHash)])
        #expect(throws: Whitelist.ParseError(line: 2, text: "xyz")) {
            try Whitelist.parse("\(hash.hex)\nxyz")
        }
    }

    // MARK: UDP (BEP 15)

    func udp(
        _ service: inout TrackerService, _ packet: [UInt8], from sender: Endpoint, now: UInt32 = 100
    ) -> [UInt8]? {
        var out: [UInt8] = []
        let answered = packet.withUnsafeBytes {
            service.serveUDP($0, from: sender, now: now, random: 3, into: &out)
        }
        return answered ? out : nil
    }

    @Test func udpConnectAnnounceScrapeWithTheClientCodec() throws {
        var service = TrackerService(configuration: TrackerConfiguration(), connectionKey: key)
        let alice = Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 40_000)
        let bob = Endpoint(ip: IPAddress(v4: 0x7F00_0002), port: 40_001)
        func announce(_ who: Endpoint, _ request: AnnounceRequest) throws -> AnnounceResponse {
            let reply = try #require(
                udp(&service, UDPTrackerCodec.connectRequest(transaction: 11), from: who))
            let connection = try UDPTrackerCodec.parseConnect(reply, transaction: 11)
            let packet = UDPTrackerCodec.announceRequest(
                request, connection: connection, transaction: 12, urlData: "/announce?passkey=x")
            let answer = try #require(udp(&service, packet, from: who))
            return try UDPTrackerCodec.parseAnnounce(answer, transaction: 12, ipv6: false)
        }
        _ = try announce(alice, request(port: 6881, left: 0))
        let response = try announce(bob, request(port: 6882))
        #expect(response.peers == [Endpoint("127.0.0.1:6881")!])
        #expect(response.seeders == 1 && response.leechers == 1 && response.interval == 1_800)
        let connect = try #require(udp(&service, UDPTrackerCodec.connectRequest(transaction: 1), from: alice))
        let connection = try UDPTrackerCodec.parseConnect(connect, transaction: 1)
        let other = InfoHash(String(repeating: "01", count: 20))!
        let scrape = try #require(
            udp(
                &service,
                UDPTrackerCodec.scrapeRequest([hash, other], connection: connection, transaction: 2),
                from: alice))
        let stats = try UDPTrackerCodec.parseScrape(scrape, transaction: 2, infoHashes: [hash, other])
        #expect(stats[hash] == ScrapeStats(seeders: 1, completed: 0, leechers: 1))
        #expect(stats[other] == ScrapeStats(seeders: 0, completed: 0, leechers: 0))
    }

    @Test func udpIPv6RepliesCarry18BytePeers() throws {
        var service = TrackerService(configuration: TrackerConfiguration(), connectionKey: key)
        let one = Endpoint(ip: IPAddress("2001:db8::1")!, port: 1)
        let two = Endpoint(ip: IPAddress("2001:db8::2")!, port: 2)
        for (who, port) in [(one, UInt16(7001)), (two, 7002)] {
            let connection = try UDPTrackerCodec.parseConnect(
                try #require(udp(&service, UDPTrackerCodec.connectRequest(transaction: 5), from: who)),
                transaction: 5)
            let packet = UDPTrackerCodec.announceRequest(
                request(port: port), connection: connection, transaction: 6, urlData: nil)
            let reply = try UDPTrackerCodec.parseAnnounce(
                try #require(udp(&service, packet, from: who)), transaction: 6, ipv6: true)
            if port == 7002 { #expect(reply.peers == [Endpoint("[2001:db8::1]:7001")!]) }
        }
    }

    @Test func connectionIDsAreBoundToTheAddressAndExpire() throws {
        let ids = ConnectionIDs(key: key, window: 60)
        let alice = Endpoint(ip: IPAddress(v4: 1), port: 1)
        let id = ids.make(for: alice, now: 125)
        #expect(ids.accepts(id, from: alice, now: 125))
        #expect(ids.accepts(id, from: alice, now: 239))
        #expect(!ids.accepts(id, from: alice, now: 240))
        #expect(ids.accepts(id, from: Endpoint(ip: IPAddress(v4: 1), port: 2), now: 125))  // IP only
        #expect(!ids.accepts(id, from: Endpoint(ip: IPAddress(v4: 2), port: 1), now: 125))
        #expect(ConnectionIDs(window: 60).make(for: alice, now: 125) != id)  // another key
        var service = TrackerService(configuration: TrackerConfiguration(), connectionKey: key)
        let packet = UDPTrackerCodec.announceRequest(
            request(port: 1), connection: 0xDEAD, transaction: 9, urlData: nil)
        let reply = try #require(udp(&service, packet, from: alice))
        #expect(throws: TrackerError.failure("unknown or expired connection ID")) {
            try UDPTrackerCodec.parseAnnounce(reply, transaction: 9, ipv6: false)
        }
    }

    @Test func malformedDatagramsGetErrorsOrSilence() throws {
        var service = TrackerService(configuration: TrackerConfiguration(), connectionKey: key)
        let sender = Endpoint(ip: IPAddress(v4: 1), port: 1)
        #expect(udp(&service, [1, 2, 3], from: sender) == nil)
        var header: [UInt8] = []
        header.appendBigEndian(UInt64(99))
        header.appendBigEndian(UInt32(1))
        header.appendBigEndian(UInt32(77))
        let short = try #require(udp(&service, header + [0, 0], from: sender))
        #expect(throws: TrackerError.failure("action 1 packet of 18 bytes, needs 98")) {
            try UDPTrackerCodec.parseAnnounce(short, transaction: 77, ipv6: false)
        }
        var wrongMagic: [UInt8] = []
        wrongMagic.appendBigEndian(UInt64(1))
        wrongMagic.appendBigEndian(UInt32(0))
        wrongMagic.appendBigEndian(UInt32(5))
        let refused = try #require(udp(&service, wrongMagic, from: sender))
        #expect(Array(refused.prefix(4)) == [0, 0, 0, 3])
        // Random datagrams never trap and never get more than an error back.
        var generator = SeededGenerator(state: 15)
        for _ in 0..<5_000 {
            let length = Int.random(in: 0..<200, using: &generator)
            var packet = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length >= 12, Bool.random(using: &generator) {
                packet[11] = UInt8.random(in: 0...3, using: &generator)
                packet[8...10] = [0, 0, 0]
            }
            if let reply = udp(&service, packet, from: sender) { #expect(reply.count <= 216) }
        }
    }

    @Test func urlDataOptionsAreToleratedAndRead() {
        let packet: [UInt8] =
            Array(repeating: 0, count: 98) + [1, 2, 3] + Array("/an".utf8) + [2, 2] + Array("n?".utf8) + [
                9, 9,
            ]
        let data = packet.withUnsafeBytes { UDPTrackerPacket.urlData($0, from: 98) }
        #expect(data == Array("/ann?".utf8))
        let truncated: [UInt8] = Array(repeating: 0, count: 98) + [2, 200, 65]
        #expect(truncated.withUnsafeBytes { UDPTrackerPacket.urlData($0, from: 98) } == [65])
    }
}
