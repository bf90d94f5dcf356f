import Gnutella
import PeerNet
import Testing

@Suite("Query Routing Protocol")
struct QueryRoutingTests {
    /// The QRP specification's own test values (also in LimeWire's and gtk-gnutella's tests).
    @Test("the spec's hash vectors")
    func hashVectors() {
        let vectors: [(String, Int, Int)] = [
            ("", 13, 0), ("eb", 13, 6791), ("ebc", 13, 7082), ("ebck", 13, 6698), ("ebckl", 13, 3179),
            ("ebcklm", 13, 3235), ("ebcklme", 13, 6438), ("ebcklmen", 13, 1062), ("ebcklmenq", 13, 3527),
            ("", 16, 0), ("n", 16, 65003), ("nd", 16, 54193), ("ndf", 16, 4953), ("ndfl", 16, 58201),
            ("ndfla", 16, 34830), ("ndflal", 16, 36910), ("ndflale", 16, 34586), ("ndflalem", 16, 37658),
            ("ndflaleme", 16, 45559), ("ol2j34lj", 10, 318), ("asdfas23", 10, 503), ("9um3o34fd", 10, 758),
            ("a234d", 10, 281), ("a3f", 10, 767), ("3nja9", 10, 581), ("2459345938032343", 10, 146),
            ("7777a88a8a8a8", 10, 342), ("asdfjklkj3k", 10, 861), ("adfk32l", 10, 1011),
            ("zzzzzzzzzzz", 10, 944), ("3NJA9", 10, 581), ("3nJa9", 10, 581),
        ]
        for (word, bits, expected) in vectors {
            #expect(QRPHash.hash(word, bits: bits) == expected, "hash(\(word), \(bits))")
        }
    }

    @Test("keywords: words of three characters or more, lower-cased")
    func keywords() {
        #expect(QRPHash.keywords("The_Free-Music of 2024.mp3") == ["the", "free", "music", "2024", "mp3"])
    }

    @Test("a table sent as RESET and compressed PATCHes is rebuilt exactly")
    func tableTransfer() throws {
        var table = QueryRouteTable(bits: 16)
        for name in ["free music collection.mp3", "linux distribution.iso", "holiday photos 2024.zip"] {
            table.add(fileName: name)
        }
        let updates = table.updates()
        guard case .reset(65_536, 7) = updates.first else {
            Issue.record("no RESET first")
            return
        }
        var receiver = QueryRouteTableReceiver()
        for update in updates {
            // Each goes over the wire and back.
            try receiver.apply(try RouteTableUpdate(parsing: update.encoded()))
        }
        let rebuilt = try #require(receiver.table)
        #expect(rebuilt == table)
        #expect(rebuilt.matches(Query(text: "free music")))
        #expect(rebuilt.matches(Query(text: "LINUX iso")))
        #expect(!rebuilt.matches(Query(text: "free software")))
        #expect(rebuilt.matches(Query(text: "")))  // a URN query: QRP cannot rule it out
    }

    @Test("8-bit patches, a patch split in parts, and deltas on an existing table")
    func patches() throws {
        var receiver = QueryRouteTableReceiver()
        try receiver.apply(.reset(tableLength: 16, infinity: 7))
        // Slot 3 becomes present (7 - 7 = 0 < infinity), slot 5 goes to 6 (present), the rest stay.
        var deltas = [UInt8](repeating: 0, count: 16)
        deltas[3] = UInt8(bitPattern: -7)
        deltas[5] = UInt8(bitPattern: -1)
        try receiver.apply(
            .patch(sequence: 1, count: 2, compressor: 0, entryBits: 8, data: Array(deltas[0..<8])))
        #expect(receiver.table == nil)
        try receiver.apply(
            .patch(sequence: 2, count: 2, compressor: 0, entryBits: 8, data: Array(deltas[8...])))
        let table = try #require(receiver.table)
        #expect(table.filledSlots == 2)
    }

    @Test("out-of-order, oversized and PATCH-before-RESET updates are refused")
    func refusals() throws {
        var receiver = QueryRouteTableReceiver()
        #expect(throws: GnutellaError.self) {
            try receiver.apply(.patch(sequence: 1, count: 1, compressor: 0, entryBits: 4, data: [0]))
        }
        try receiver.apply(.reset(tableLength: 1_024, infinity: 7))
        #expect(throws: GnutellaError.self) {
            try receiver.apply(.patch(sequence: 2, count: 2, compressor: 0, entryBits: 4, data: [0]))
        }
        #expect(throws: GnutellaError.self) {
            try RouteTableUpdate(parsing: [0, 0, 0, 0, 0x40, 7])  // 2^30 slots
        }
        // A compressed patch inflating past the table is a deflate bomb: refused.
        let bomb = Zlib.compress([UInt8](repeating: 0, count: 1 << 20))
        try receiver.apply(.reset(tableLength: 1_024, infinity: 7))
        #expect(throws: GnutellaError.self) {
            try receiver.apply(.patch(sequence: 1, count: 1, compressor: 1, entryBits: 4, data: bomb))
        }
    }
}
