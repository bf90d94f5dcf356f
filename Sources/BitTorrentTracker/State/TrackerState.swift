import BitTorrent
import PeerNet

/// Which protocol a request came over, for the statistics.
public enum TrackerTransport: Sendable, Hashable {
    case http
    case udp
}

/// Which address families an announce reply carries: a UDP reply has one (BEP 15: the
/// packet's own), an HTTP reply both (`peers` and `peers6`, BEP 7).
public enum ReplyFamilies: Sendable, Hashable {
    case ipv4
    case ipv6
    case both
}

/// Compact peer lists being filled for one reply; the driver keeps one and reuses its storage.
public struct CompactPeerLists: Sendable {
    /// 6 bytes a peer.
    public var ipv4: [UInt8] = []
    /// 18 bytes a peer.
    public var ipv6: [UInt8] = []

    public init() {}

    public mutating func reset() {
        ipv4.removeAll(keepingCapacity: true)
        ipv6.removeAll(keepingCapacity: true)
    }
}

/// The counts an announce reply carries besides the peers.
public struct AnnounceSummary: Sendable, Hashable {
    public var interval: Int
    public var minimumInterval: Int
    public var seeders: Int
    public var leechers: Int
    public var completed: Int
}

/// A tracker's whole state, sans I/O: the swarms, announce and scrape rules, expiry and the
/// counters. Time (whole seconds on any monotonic clock) and randomness come from the caller.
public struct TrackerState: Sendable {
    private struct Swarm: Sendable {
        var ipv4 = PeerTable<IPv4Entry>()
        var ipv6 = PeerTable<IPv6Entry>()
        /// Downloads completed (the scrape's `downloaded`).
        var completed = 0

        var peers: Int { ipv4.count + ipv6.count }
        var seeders: Int { ipv4.seeds + ipv6.seeds }
        var stats: ScrapeStats {
            ScrapeStats(seeders: seeders, completed: completed, leechers: peers - seeders)
        }
    }

    public private(set) var configuration: TrackerConfiguration
    private var swarms: [InfoHashKey: Swarm] = [:]
    private var peerCount = 0
    private var seedCount = 0
    public private(set) var counters = TrackerCounters()

    public init(configuration: TrackerConfiguration) {
        self.configuration = configuration
    }

    /// Torrents with at least one peer (or a completed count worth keeping).
    public var torrentCount: Int { swarms.count }
    public var peerTotal: Int { peerCount }
    public var seedTotal: Int { seedCount }

    /// Whether `infoHash` may be tracked.
    public func admits(_ infoHash: InfoHashKey) -> Bool {
        switch configuration.admission {
        case .open: return true
        case .whitelist(let allowed): return allowed.contains(infoHash)
        }
    }

    /// Replaces the admission rule (a reloaded whitelist); torrents no longer allowed are dropped.
    public mutating func setAdmission(_ admission: TrackerAdmission) {
        configuration.admission = admission
        for key in swarms.keys where !admits(key) {
            if let swarm = swarms.removeValue(forKey: key) {
                peerCount -= swarm.peers
                seedCount -= swarm.seeders
            }
        }
    }

    /// The address a peer is listed under: its packet's source, or what it claims when the
    /// configuration trusts claims.
    public func listedIP(source: IPAddress, claimed: IPAddress?) -> IPAddress {
        configuration.trustClaimedIP ? claimed ?? source : source
    }

    /// Serves an announce (BEP 3 / BEP 15): records, refreshes or removes the peer, then appends
    /// up to `numwant` other peers of the asked `families` to `peers`, starting at a position
    /// chosen by `random`. A seed gets leechers only.
    public mutating func announce(
        _ announce: TrackerAnnounce, from ip: IPAddress, families: ReplyFamilies,
        via transport: TrackerTransport,
        now: UInt32, random: UInt64, peers: inout CompactPeerLists
    ) throws(TrackerRequestError) -> AnnounceSummary {
        counters.count(transport, announce: true)
        guard admits(announce.infoHash) else {
            counters.failures += 1
            throw .torrentNotAllowed(announce.infoHash)
        }
        let key = announce.infoHash
        let index: [InfoHashKey: Swarm].Index
        if let found = swarms.index(forKey: key) {
            index = found
        } else {
            guard announce.event != .stopped else { return summary(of: nil) }
            guard swarms.count < configuration.maxTorrents else {
                counters.failures += 1
                throw .trackerFull
            }
            swarms[key] = Swarm()
            guard let added = swarms.index(forKey: key) else { return summary(of: nil) }
            index = added
        }
        let limits = Limits(
            room: peerCount < configuration.maxPeers, perTorrent: configuration.maxPeersPerTorrent,
            numWant: min(announce.numWant ?? configuration.defaultNumWant, configuration.maxNumWant))
        let change = Self.apply(
            announce, from: ip, families: families, now: now, random: random, limits: limits,
            to: &swarms.values[index], peers: &peers)
        peerCount += change.peers
        seedCount += change.seeds
        let result = summary(seeders: change.seeders, leechers: change.leechers, completed: change.completed)
        if change.seeders + change.leechers == 0 && change.completed == 0 { swarms.remove(at: index) }
        return result
    }

    private struct Limits {
        var room: Bool
        var perTorrent: Int
        var numWant: Int
    }

    private struct Change {
        var peers: Int
        var seeds: Int
        var seeders: Int
        var leechers: Int
        var completed: Int
    }

    /// Records the announce in `swarm` and picks the peers to send; returns the change in the
    /// peer and seed counts and the swarm's counts after it.
    private static func apply(
        _ announce: TrackerAnnounce, from ip: IPAddress, families: ReplyFamilies, now: UInt32, random: UInt64,
        limits: Limits, to swarm: inout Swarm, peers: inout CompactPeerLists
    ) -> Change {
        let (v4, v6) = peerKeys(ip, port: announce.port)
        let before = (swarm.peers, swarm.seeders)
        func change() -> Change {
            Change(
                peers: swarm.peers - before.0, seeds: swarm.seeders - before.1, seeders: swarm.seeders,
                leechers: swarm.peers - swarm.seeders, completed: swarm.completed)
        }
        // Where the peer was listed before (nil: it was not), in one table lookup when it can
        // be recorded at once.
        let wasSeed: Bool?
        if announce.event == .stopped {
            wasSeed =
                v4.flatMap { swarm.ipv4.remove($0) } ?? v6.flatMap { swarm.ipv6.remove($0) }
        } else if limits.room && swarm.peers < limits.perTorrent {
            wasSeed =
                v4.map { swarm.ipv4.upsert($0, isSeed: announce.isSeed, now: now) }
                ?? v6.map { swarm.ipv6.upsert($0, isSeed: announce.isSeed, now: now) } ?? nil
        } else {
            wasSeed = v4.flatMap { swarm.ipv4.status($0) } ?? v6.flatMap { swarm.ipv6.status($0) }
            if wasSeed != nil {
                if let v4 { swarm.ipv4.upsert(v4, isSeed: announce.isSeed, now: now) }
                if let v6 { swarm.ipv6.upsert(v6, isSeed: announce.isSeed, now: now) }
            }
        }
        // A download counts as completed on the `completed` event, or when a listed leecher
        // reports nothing left under any event: aria2, stopping at once, sends only `stopped`.
        if (announce.isSeed && wasSeed == false) || (announce.event == .completed && wasSeed == nil) {
            swarm.completed += 1
        }
        guard announce.event != .stopped else { return change() }
        // The asker's own family first, then the other where the reply has room for both.
        let seedAsking = announce.isSeed
        var taken = 0
        let sixFirst = families == .ipv6 || (families == .both && v6 != nil)
        if sixFirst {
            taken += swarm.ipv6.sample(
                into: &peers.ipv6, limit: limits.numWant, start: random, skipping: v6,
                leechersOnly: seedAsking)
        }
        if families != .ipv6 {
            taken += swarm.ipv4.sample(
                into: &peers.ipv4, limit: limits.numWant - taken, start: random, skipping: v4,
                leechersOnly: seedAsking)
        }
        if families == .both && !sixFirst {
            taken += swarm.ipv6.sample(
                into: &peers.ipv6, limit: limits.numWant - taken, start: random >> 7, skipping: v6,
                leechersOnly: seedAsking)
        }
        return change()
    }

    /// Counts for each info-hash, in order (zeros for unknown ones, as BEP 15 expects).
    public mutating func scrape(_ infoHashes: [InfoHashKey], via transport: TrackerTransport) -> [ScrapeStats]
    {
        counters.count(transport, announce: false)
        return counts(infoHashes)
    }

    /// Counts for each info-hash without counting a scrape.
    public func counts(_ infoHashes: [InfoHashKey]) -> [ScrapeStats] {
        infoHashes.map { swarms[$0]?.stats ?? ScrapeStats(seeders: 0, completed: 0, leechers: 0) }
    }

    /// Every torrent's counts (a full scrape), sorted by info-hash.
    public mutating func scrapeAll(via transport: TrackerTransport) -> [(InfoHashKey, ScrapeStats)] {
        counters.count(transport, announce: false)
        return swarms.map { ($0.key, $0.value.stats) }.sorted { $0.0 < $1.0 }
    }

    /// Forgets peers that have not announced within ``TrackerConfiguration/peerTimeout`` and
    /// torrents left without peers; returns how many peers went.
    @discardableResult
    public mutating func expire(now: UInt32) -> Int {
        let timeout = UInt32(clamping: configuration.peerTimeout)
        var removed = 0
        var emptied: [InfoHashKey] = []
        var index = swarms.startIndex
        while index != swarms.endIndex {
            let gone = Self.expire(&swarms.values[index], now: now, timeout: timeout)
            removed += gone.peers
            peerCount -= gone.peers
            seedCount -= gone.seeds
            if swarms.values[index].peers == 0 { emptied.append(swarms.keys[index]) }
            index = swarms.index(after: index)
        }
        for key in emptied { swarms[key] = nil }
        counters.expired += removed
        return removed
    }

    /// Counts a request that could not be read.
    public mutating func countMalformed(via transport: TrackerTransport) {
        counters.malformed += 1
    }

    /// Counts a UDP connect (BEP 15).
    public mutating func countConnect() { counters.connects += 1 }

    /// Counts a refused request.
    public mutating func countFailure() { counters.failures += 1 }

    /// A snapshot for `/stats`.
    public func statistics(uptime: Int) -> TrackerStatistics {
        TrackerStatistics(
            torrents: swarms.count, peers: peerCount, seeders: seedCount, leechers: peerCount - seedCount,
            counters: counters, uptimeSeconds: uptime)
    }

    private static func expire(_ swarm: inout Swarm, now: UInt32, timeout: UInt32) -> (peers: Int, seeds: Int)
    {
        let gone4 = swarm.ipv4.expire(now: now, timeout: timeout)
        let gone6 = swarm.ipv6.expire(now: now, timeout: timeout)
        return (gone4.peers + gone6.peers, gone4.seeds + gone6.seeds)
    }

    private func summary(of swarm: Swarm?) -> AnnounceSummary {
        summary(
            seeders: swarm?.seeders ?? 0, leechers: (swarm?.peers ?? 0) - (swarm?.seeders ?? 0),
            completed: swarm?.completed ?? 0)
    }

    private func summary(seeders: Int, leechers: Int, completed: Int) -> AnnounceSummary {
        AnnounceSummary(
            interval: configuration.announceInterval, minimumInterval: configuration.minimumInterval,
            seeders: seeders, leechers: leechers, completed: completed)
    }

    private static func peerKeys(_ ip: IPAddress, port: UInt16) -> (IPv4Peer?, IPv6Peer?) {
        if let address = ip.v4 { return (IPv4Peer(ip: address, port: port), nil) }
        return (nil, IPv6Peer(high: ip.high, low: ip.low, port: port))
    }
}

/// Request counters since the tracker started.
public struct TrackerCounters: Sendable, Hashable, Codable {
    public var httpAnnounces = 0
    public var udpAnnounces = 0
    public var httpScrapes = 0
    public var udpScrapes = 0
    public var connects = 0
    /// Requests refused (unknown torrent, full, bad connection ID, bad parameter).
    public var failures = 0
    /// Requests that could not be read at all.
    public var malformed = 0
    /// Peers dropped for not announcing.
    public var expired = 0

    public var announces: Int { httpAnnounces + udpAnnounces }

    mutating func count(_ transport: TrackerTransport, announce: Bool) {
        switch (transport, announce) {
        case (.http, true): httpAnnounces += 1
        case (.udp, true): udpAnnounces += 1
        case (.http, false): httpScrapes += 1
        case (.udp, false): udpScrapes += 1
        }
    }
}
