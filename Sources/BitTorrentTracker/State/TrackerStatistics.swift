/// What `/stats` reports: the swarm sizes and request counters.
public struct TrackerStatistics: Sendable, Hashable, Codable {
    public var torrents: Int
    public var peers: Int
    public var seeders: Int
    public var leechers: Int
    public var counters: TrackerCounters
    public var uptimeSeconds: Int

    /// One JSON object, keys in a fixed order.
    public var json: String {
        let fields: [(String, Int)] = [
            ("torrents", torrents), ("peers", peers), ("seeders", seeders), ("leechers", leechers),
            ("announces_http", counters.httpAnnounces), ("announces_udp", counters.udpAnnounces),
            ("scrapes_http", counters.httpScrapes), ("scrapes_udp", counters.udpScrapes),
            ("connects_udp", counters.connects), ("failures", counters.failures),
            ("malformed", counters.malformed), ("expired_peers", counters.expired),
            ("uptime_seconds", uptimeSeconds),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
    }

    /// Prometheus text exposition format (version 0.0.4).
    public var prometheus: String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            out += "# HELP peerstack_tracker_\(name) \(help)\n# TYPE peerstack_tracker_\(name) \(type)\n"
            for (labels, value) in samples {
                out += "peerstack_tracker_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n"
            }
        }
        metric("torrents", "gauge", "Torrents with peers.", [("", torrents)])
        metric(
            "peers", "gauge", "Peers by state.",
            [("state=\"seeder\"", seeders), ("state=\"leecher\"", leechers)])
        metric(
            "announces_total", "counter", "Announces served.",
            [("transport=\"http\"", counters.httpAnnounces), ("transport=\"udp\"", counters.udpAnnounces)])
        metric(
            "scrapes_total", "counter", "Scrapes served.",
            [("transport=\"http\"", counters.httpScrapes), ("transport=\"udp\"", counters.udpScrapes)])
        metric("connects_total", "counter", "UDP connects (BEP 15).", [("", counters.connects)])
        metric("failures_total", "counter", "Requests refused.", [("", counters.failures)])
        metric("malformed_total", "counter", "Requests that could not be read.", [("", counters.malformed)])
        metric(
            "expired_peers_total", "counter", "Peers dropped for not announcing.", [("", counters.expired)])
        metric("uptime_seconds", "gauge", "Seconds since the tracker started.", [("", uptimeSeconds)])
        return out
    }
}
