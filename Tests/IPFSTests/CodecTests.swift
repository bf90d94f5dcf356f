import IPFS
import Multiformats
import Testing

@Suite struct DagPBTests {
    let child: CID

    init() throws { child = try CID("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH") }

    @Test("hello world's block is the bytes Kubo hashes")
    func knownBlock() throws {
        let data = UnixFSData(kind: .file, data: Array("hello world\n".utf8), fileSize: 12)
        let block = DagPBNode(data: data.encoded()).encoded()
        #expect(block == [0x0a, 0x12, 0x08, 0x02, 0x12, 0x0c] + Array("hello world\n".utf8) + [0x18, 0x0c])
        #expect(
            try CID(v0: Multihash.hash(block)).description == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        )
        let decoded = try DagPBNode(decoding: block)
        #expect(try UnixFSData(decoding: decoded.data ?? []) == data)
    }

    @Test func roundTripAndSorting() throws {
        let node = DagPBNode(
            links: [
                DagPBLink(cid: child, name: "b", tsize: 6), DagPBLink(cid: child, name: "a", tsize: 6),
                DagPBLink(cid: child.v1, name: "a", tsize: nil), DagPBLink(cid: child, name: nil, tsize: 1),
            ], data: [0x08, 0x01])
        let decoded = try DagPBNode(decoding: node.encoded())
        // Sorted by name bytes, stably (a missing name sorts as the empty one).
        #expect(decoded.links.map(\.name) == [nil, "a", "a", "b"])
        #expect(decoded.links[1].cid == child && decoded.links[2].cid == child.v1)
        #expect(decoded.links[2].tsize == nil)
        #expect(decoded.data == [0x08, 0x01])
        #expect(try DagPBNode(decoding: []) == DagPBNode())
    }

    @Test(
        "non-canonical and malformed nodes are refused with the offset",
        arguments: [
            ([0x0a, 0x00, 0x0a, 0x00], "a second Data field"),
            ([0x0a, 0x00, 0x12, 0x00], "a link after the Data field"),
            ([0x1a, 0x00], "unknown field 3"),
            ([0x08, 0x00], "wire type 0"),
            ([0x0a, 0x05, 0x00], "runs past the end"),
            ([0x12, 0x00], "link without a Hash"),
            ([0x12, 0x04, 0x12, 0x00, 0x0a, 0x00], "out of order"),
            ([0x12, 0x02, 0x0a, 0x00], "not a CID"),
            ([0x12, 0x03, 0x18, 0x80, 0x00], "shortest form"),
            ([0x12, 0x02, 0x18], "runs past the end"),
        ] as [([UInt8], String)])
    func strict(bytes: [UInt8], reason: String) {
        #expect {
            try DagPBNode(decoding: bytes)
        } throws: { error in
            guard case IPFSError.badDagPB(let why, _) = error else { return false }
            return why.contains(reason)
        }
    }

    @Test func invalidNameAndOversize() {
        var link: [UInt8] = [0x0a, 0x22] + child.bytes + [0x12, 0x01, 0xff]
        link = [0x12, UInt8(link.count)] + link
        #expect(throws: IPFSError.self) { try DagPBNode(decoding: link) }
        #expect(throws: IPFSError.self) {
            try DagPBNode(decoding: [UInt8](repeating: 0, count: DagPBNode.maxBlockSize + 1))
        }
    }

    @Test func unixfsFields() throws {
        var data = UnixFSData(
            kind: .hamtShard, data: [1, 2], fileSize: 9, blockSizes: [4, 5], hashType: 0x22, fanout: 256)
        data.mode = 0o644
        data.mtime = UnixFSData.Time(seconds: 1_700_000_000, nanoseconds: 5)
        #expect(try UnixFSData(decoding: data.encoded()) == data)
        #expect(throws: IPFSError.self) { try UnixFSData(decoding: [0x12, 0x00]) }  // no Type
        #expect(throws: IPFSError.self) { try UnixFSData(decoding: [0x08, 0x09]) }  // unknown Type
        #expect(throws: IPFSError.self) { try UnixFSData(decoding: [0x08, 0x02, 0x1a, 0x05]) }  // cut short
        // Packed blocksizes and unknown fields are read.
        #expect(
            try UnixFSData(decoding: [0x08, 0x02, 0x22, 0x02, 0x03, 0x04, 0x50, 0x01]).blockSizes == [3, 4])
    }
}

@Suite struct CBORTests {
    @Test func carHeader() throws {
        let root = try CID("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        let header = CAR.header(roots: [root])
        // 56 bytes: {"roots": [42(h'00' + cid)], "version": 1}, keys sorted length-first.
        #expect(Array(header.prefix(9)) == [0x38, 0xa2, 0x65, 0x72, 0x6f, 0x6f, 0x74, 0x73, 0x81])
        #expect(Array(header[9..<13]) == [0xd8, 0x2a, 0x58, 0x23])
        #expect(Array(header.suffix(9)) == [0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01])
        var offset = 0
        let value = try CBORValue.decode(Array(header.dropFirst()), at: &offset)
        #expect(value["roots"] == .array([.cid(root)]))
        #expect(value["version"] == .unsigned(1))
    }

    @Test(
        "strict decoding",
        arguments: [
            [0x18, 0x05],  // 5 in two bytes: not shortest
            [0x5f],  // indefinite length
            [0xc1, 0x00],  // a tag other than 42
            [0xd8, 0x2a, 0x41, 0x01],  // tag 42 without the 0x00 prefix
            [0xa2, 0x61, 0x61, 0x00, 0x61, 0x61, 0x00],  // repeated key
            [0xa1, 0x00, 0x00],  // key not text
            [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],  // huge array
            [0xf9, 0x00, 0x00],  // float
            [0x62, 0xff, 0xfe],  // text not UTF-8
        ] as [[UInt8]])
    func strict(bytes: [UInt8]) {
        var offset = 0
        #expect(throws: IPFSError.self) { try CBORValue.decode(bytes, at: &offset) }
    }

    @Test func depthBound() {
        var offset = 0
        let nested = [UInt8](repeating: 0x81, count: 100) + [0x00]
        #expect(throws: IPFSError.self) { try CBORValue.decode(nested, at: &offset) }
    }
}

/// MurmurHash3 x64 128 vectors from PyPI mmh3 (`mmh3.hash64(data, 0, signed=False)`).
@Suite struct Murmur3Tests {
    @Test(
        arguments: [
            ("", 0x0 as UInt64, 0x0 as UInt64), ("hello", 0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19),
            (String(repeating: "a", count: 15), 0x7d07_a8db_fd2e_7fbc, 0x8fa8_044a_a85f_f959),
            (String(repeating: "a", count: 16), 0xf2c1_180d_62aa_a6ce, 0x6af6_f303_2bb2_3942),
            (String(repeating: "a", count: 17), 0x6f72_14c7_cef2_d698, 0xa4fd_bc53_4ede_a5bb),
            ("abcdefghijklmnopqrstuvwxyz0123456789", 0xf259_6f5e_b4ff_5e3a, 0x3996_b937_2e6d_94c0),
            ("ünï", 0x7097_ec6c_608b_a9bb, 0x1ab0_ef2c_f266_fbbb),
        ])
    func vectors(text: String, h1: UInt64, h2: UInt64) {
        let (a, b) = Murmur3.x64128(Array(text.utf8))
        #expect(a == h1 && b == h2)
    }
}
