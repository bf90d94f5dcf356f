import Foundation
import Gnutella
import PeerNet
import Testing

/// Our Gnutella bytes read by a parser we did not write: tshark's `gnutella` dissector. The
/// descriptors go into a capture file as one TCP stream to port 6346 (the dissector reassembles
/// descriptors across segments); tshark must decode every one with the values we encoded and
/// flag nothing malformed.
@Suite("Gnutella descriptors decoded by tshark")
struct GnutellaWireInteropTests {
    @Test("ping, pong, query, query hit, push and bye, one stream, cut across segments")
    func dissected() throws {
        try #require(Interop.enabled("tshark"), "tshark is not installed")
        let servent = GUID(random: Array(40..<56))
        let endpoint = Endpoint("10.1.2.3:6346")!
        let sha1 = SHA1URN.string([UInt8](repeating: 0x5A, count: 20))
        let descriptors: [Descriptor] = [
            Descriptor(guid: GUID(random: Array(0..<16)), ttl: 1, .ping(Ping())),
            Descriptor(
                guid: GUID(random: Array(0..<16)), ttl: 6, hops: 1,
                .pong(Pong(endpoint: endpoint, files: 42, kilobytes: 1_234))),
            Descriptor(
                guid: GUID(random: Array(16..<32)), ttl: 7,
                .query(Query(text: "free music", extensions: ExtensionBlock(urns: [sha1])))),
            Descriptor(
                guid: GUID(random: Array(16..<32)), ttl: 5, hops: 2,
                .queryHit(
                    QueryHit(
                        endpoint: endpoint, speed: 350,
                        results: [
                            .init(
                                index: 3, size: 5_000_000, name: "free music.mp3",
                                extensions: ExtensionBlock(urns: [sha1])),
                            .init(index: 9, size: 12, name: "notes.txt"),
                        ],
                        trailer: .init(
                            vendor: "PSTK", push: false, busy: false, uploaded: true, measuredSpeed: true),
                        servent: servent))),
            Descriptor(
                guid: GUID(random: Array(60..<76)), ttl: 7,
                .push(Push(servent: servent, index: 3, endpoint: Endpoint("10.9.8.7:6348")!))),
            Descriptor(guid: GUID(random: Array(80..<96)), ttl: 1, .bye(Bye(code: 200, message: "Closing"))),
        ]
        let stream = descriptors.flatMap { $0.encoded() }
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("gnutella-\(UUID()).pcap")
        defer { try? FileManager.default.removeItem(at: capture) }
        try Self.pcap(stream, segment: 100).write(to: capture)
        let fields = [
            "gnutella.header.payload", "gnutella.header.ttl", "gnutella.header.hops", "gnutella.pong.port",
            "gnutella.pong.ip", "gnutella.pong.files", "gnutella.pong.kbytes", "gnutella.query.search",
            "gnutella.queryhit.count", "gnutella.queryhit.hit.name", "gnutella.queryhit.hit.size",
            "gnutella.queryhit.servent_id", "gnutella.push.ip", "gnutella.push.port", "gnutella.push.index",
            "_ws.malformed", "_ws.expert",
        ]
        let output = try Interop.check(
            Interop.onPath("tshark") ?? "/usr/bin/tshark",
            ["-r", capture.path, "-T", "fields", "-E", "aggregator=|"] + fields.flatMap { ["-e", $0] })
        var values: [String: [String]] = [:]
        for line in output.split(separator: "\n") {
            for (field, value) in zip(fields, line.split(separator: "\t", omittingEmptySubsequences: false)) {
                values[field, default: []] += value.split(separator: "|").map(String.init)
            }
        }
        #expect(values["gnutella.header.payload"] == ["0", "1", "128", "129", "64", "2"])
        #expect(values["gnutella.header.ttl"] == ["1", "6", "7", "5", "7", "1"])
        #expect(values["gnutella.pong.port"] == ["6346"] && values["gnutella.pong.ip"] == ["10.1.2.3"])
        #expect(values["gnutella.pong.files"] == ["42"] && values["gnutella.pong.kbytes"] == ["1234"])
        #expect(values["gnutella.query.search"] == ["free music"])
        #expect(values["gnutella.queryhit.count"] == ["2"])
        #expect(values["gnutella.queryhit.hit.name"] == ["free music.mp3", "notes.txt"])
        #expect(values["gnutella.queryhit.hit.size"] == ["5000000", "12"])
        #expect(values["gnutella.queryhit.servent_id"] == [servent.description])
        #expect(values["gnutella.push.ip"] == ["10.9.8.7"] && values["gnutella.push.port"] == ["6348"])
        #expect(values["_ws.malformed", default: []].isEmpty, "tshark flagged malformed data")
        #expect(values["_ws.expert", default: []].isEmpty, "tshark raised expert info")
    }

    /// A classic pcap (raw IPv4 link type) of `bytes` as one TCP stream 127.0.0.1:40000 →
    /// 127.0.0.2:6346, in segments of `segment` bytes (checksums zero: tshark does not check).
    static func pcap(_ bytes: [UInt8], segment: Int) -> Data {
        var out = Data()
        func le32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func le16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        le32(0xA1B2_C3D4)
        le16(2)
        le16(4)
        le32(0)
        le32(0)
        le32(65_535)
        le32(101)  // LINKTYPE_RAW
        var sequence: UInt32 = 1
        for start in stride(from: 0, to: bytes.count, by: segment) {
            let payload = bytes[start..<min(start + segment, bytes.count)]
            var packet: [UInt8] = [0x45, 0]
            let total = UInt16(40 + payload.count)
            packet += [
                UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0,
                2,
            ]
            packet += [0x9C, 0x40, 0x18, 0xCA]  // ports 40000 → 6346
            packet += withUnsafeBytes(of: sequence.bigEndian) { Array($0) }
            packet += [0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
            packet += payload
            le32(UInt32(start / segment))
            le32(0)
            le32(UInt32(packet.count))
            le32(UInt32(packet.count))
            out.append(contentsOf: packet)
            sequence &+= UInt32(payload.count)
        }
        return out
    }
}
