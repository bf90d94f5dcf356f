import Bencode
import BitTorrent
import PeerNet

/// Bencoded HTTP tracker replies (BEP 3, compact BEP 23, `peers6` BEP 7, scrape BEP 48). Keys
/// are written in sorted order, so every reply is canonical bencode.
public enum HTTPTrackerReply {
    /// An announce reply. Compact: `peers` is 6 bytes a peer and `peers6` 18. Otherwise `peers`
    /// is a list of `ip`/`port` dictionaries; the tracker keeps no peer IDs, so the list always
    /// has the `no_peer_id` form, which every client reads.
    public static func announce(_ summary: AnnounceSummary, peers: CompactPeerLists, compact: Bool) -> [UInt8]
    {
        var writer = BencodeWriter(capacity: 96 + peers.ipv4.count + peers.ipv6.count)
        writer.beginDictionary()
        writer.writeString("complete")
        writer.writeInteger(Int64(summary.seeders))
        writer.writeString("downloaded")
        writer.writeInteger(Int64(summary.completed))
        writer.writeString("incomplete")
        writer.writeInteger(Int64(summary.leechers))
        writer.writeString("interval")
        writer.writeInteger(Int64(summary.interval))
        writer.writeString("min interval")
        writer.writeInteger(Int64(summary.minimumInterval))
        writer.writeString("peers")
        if compact {
            writer.writeBytes(peers.ipv4)
            if !peers.ipv6.isEmpty {
                writer.writeString("peers6")
                writer.writeBytes(peers.ipv6)
            }
        } else {
            writer.beginList()
            for address in Endpoint.parseCompact(peers.ipv4, ipLength: 4)
                + Endpoint.parseCompact(peers.ipv6, ipLength: 16)
            {
                writer.beginDictionary()
                writer.writeString("ip")
                writer.writeString(address.ip.description)
                writer.writeString("port")
                writer.writeInteger(Int64(address.port))
                writer.end()
            }
            writer.end()
        }
        writer.end()
        return writer.bytes
    }

    /// A scrape reply: `files` maps each raw info-hash to `complete`, `downloaded`, `incomplete`.
    public static func scrape(_ entries: [(InfoHashKey, ScrapeStats)]) -> [UInt8] {
        var writer = BencodeWriter(capacity: 16 + entries.count * 80)
        writer.beginDictionary()
        writer.writeString("files")
        writer.beginDictionary()
        var seen = Set<InfoHashKey>()
        for (key, stats) in entries.sorted(by: { $0.0 < $1.0 }) where seen.insert(key).inserted {
            writer.writeBytes(key.bytes)
            writer.beginDictionary()
            writer.writeString("complete")
            writer.writeInteger(Int64(stats.seeders))
            writer.writeString("downloaded")
            writer.writeInteger(Int64(stats.completed))
            writer.writeString("incomplete")
            writer.writeInteger(Int64(stats.leechers))
            writer.end()
        }
        writer.end()
        writer.end()
        return writer.bytes
    }

    /// `failure reason` (BEP 3): the request was refused, and why.
    public static func failure(_ reason: String) -> [UInt8] {
        var writer = BencodeWriter()
        writer.beginDictionary()
        writer.writeString("failure reason")
        writer.writeString(reason)
        writer.end()
        return writer.bytes
    }

    /// The client's address: the connection's source, or — when that source is a trusted proxy
    /// — the last address of its `X-Forwarded-For` header (the one the proxy appended).
    public static func clientIP(source: IPAddress, forwardedFor: String?, configuration: TrackerConfiguration)
        -> IPAddress
    {
        guard configuration.trustedProxies.contains(source), let forwardedFor,
            let last = forwardedFor.split(separator: ",").last,
            let address = IPAddress(last.trimmingCharacters(in: " \t"))
        else { return source }
        return address
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
