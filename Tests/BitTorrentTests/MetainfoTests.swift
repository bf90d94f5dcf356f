import Bencode
import Crypto
import TestSupport
import Testing

@testable import BitTorrent

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// SHA-1 of "hello world\n", the single piece of the known-answer torrent.
let helloPiece: [UInt8] = Array(Insecure.SHA1.hash(data: bytes("hello world\n")))

/// Builds a torrent's bytes from an info dictionary and extra top-level fields.
func torrentBytes(info: BencodeValue, _ extra: [String: BencodeValue] = [:]) -> [UInt8] {
    var top: [[UInt8]: BencodeValue] = [bytes("info"): info]
    for (key, value) in extra { top[bytes(key)] = value }
    return BencodeValue.dictionary(top).encoded()
}

func multiFileInfo(_ files: [(path: [String], length: Int64, attr: String?)], pieceLength: Int64 = 16_384)
    -> BencodeValue
{
    let total = files.reduce(0) { $0 + $1.length }
    let count = Int((total + pieceLength - 1) / pieceLength)
    return [
        "name": "root", "piece length": .integer(pieceLength),
        "pieces": .bytes([UInt8](repeating: 0xAB, count: 20 * count)),
        "files": .list(
            files.map { file in
                var entry: BencodeValue = [
                    "length": .integer(file.length), "path": .list(file.path.map(BencodeValue.string)),
                ]
                if let attr = file.attr, case .dictionary(var dict) = entry {
                    dict[bytes("attr")] = .string(attr)
                    entry = .dictionary(dict)
                }
                return entry
            }),
    ]
}

@Suite("Metainfo (BEP 3, 12, 19, 27, 47)")
struct MetainfoTests {
    @Test("known answer: the info-hash is the SHA-1 of the info dictionary (checked with Python's hashlib)")
    func knownInfoHash() throws {
        let info =
            bytes("d6:lengthi12e4:name9:hello.txt12:piece lengthi16384e6:pieces20:") + helloPiece + bytes("e")
        let torrent = bytes("d8:announce30:http://127.0.0.1:6969/announce4:info") + info + bytes("e")
        let metainfo = try Metainfo(parsing: torrent)
        #expect(metainfo.infoHash.hex == "7b5e918f364908afab937ecdd84059dfb61102b7")
        #expect(metainfo.info.name == "hello.txt")
        #expect(metainfo.info.totalLength == 12)
        #expect(metainfo.info.pieceCount == 1)
        #expect(metainfo.info.isMultiFile == false)
        #expect(metainfo.announce == "http://127.0.0.1:6969/announce")
        #expect(metainfo.encoded() == torrent)
    }

    @Test("an unsorted info dictionary keeps the hash of its bytes as found, and is written back untouched")
    func unsortedInfo() throws {
        let info =
            bytes("d4:name9:hello.txt6:lengthi12e12:piece lengthi16384e6:pieces20:") + helloPiece + bytes("e")
        let torrent = bytes("d4:info") + info + bytes("e")
        let metainfo = try Metainfo(parsing: torrent)
        #expect(metainfo.infoHash.hex == "9bfb9ff3b281b58b8de579c2fb39db1917a0b1f6")
        #expect(metainfo.infoBytes == info)
        #expect(metainfo.encoded() == torrent)
    }

    @Test("multi-file torrents: offsets, padding files, attributes, trackers, web seeds, private")
    func multiFile() throws {
        var info = multiFileInfo([
            (["a.bin"], 10_000, nil), ([".pad", "6384"], 6_384, "p"), (["sub", "b.bin"], 20_000, "x"),
            (["empty"], 0, nil),
        ])
        if case .dictionary(var dict) = info {
            dict[bytes("private")] = 1
            dict[bytes("source")] = "unknown key kept"
            info = .dictionary(dict)
        }
        let torrent = torrentBytes(
            info: info,
            [
                "announce": "http://a/announce",
                "announce-list": [["http://a/announce", "udp://b:1"], ["http://c"]],
                "url-list": ["http://seed/", "http://seed2/"], "comment": "c", "created by": "me",
                "creation date": 1_700_000_000, "nodes": [["127.0.0.1", 6881]],
            ])
        let metainfo = try Metainfo(parsing: torrent)
        let files = metainfo.info.files
        #expect(files.map(\.path) == [["a.bin"], [".pad", "6384"], ["sub", "b.bin"], ["empty"]])
        #expect(files.map(\.offset) == [0, 10_000, 16_384, 36_384])
        #expect(files[1].isPadding && !files[0].isPadding)
        #expect(files[2].attributes == .executable)
        #expect(metainfo.info.isPrivate)
        #expect(metainfo.info.relativePath(of: files[2]) == ["root", "sub", "b.bin"])
        #expect(metainfo.trackerTiers == [["http://a/announce", "udp://b:1"], ["http://c"]])
        #expect(metainfo.webSeeds == ["http://seed/", "http://seed2/"])
        #expect(
            metainfo.comment == "c" && metainfo.createdBy == "me" && metainfo.creationDate == 1_700_000_000)
        #expect(metainfo.extraFields[bytes("nodes")] != nil)
        #expect(metainfo.info.fields[bytes("source")] == "unknown key kept")
        // Everything, unknown keys included, survives a re-encode.
        #expect(metainfo.encoded() == torrent)
        #expect(try Metainfo(parsing: metainfo.encoded()) == metainfo)
    }

    @Test("name.utf-8 and path.utf-8 are preferred")
    func utf8Variants() throws {
        let info: BencodeValue = [
            "name": "legacy", "name.utf-8": "nåme", "piece length": 16_384, "pieces": .bytes(helloPiece),
            "files": [["length": 12, "path": ["old"], "path.utf-8": ["ünïcode"]]],
        ]
        let metainfo = try Metainfo(parsing: torrentBytes(info: info))
        #expect(metainfo.info.name == "nåme")
        #expect(metainfo.info.files[0].path == ["ünïcode"])
    }

    @Test(
        "unsafe paths are sanitised as libtorrent 2.0 sanitises them",
        arguments: [
            (["..", "etc"], ["etc"]), (["a", ".."], ["a"]), ([""], ["_"]),
            (["a", "", "b"], ["a", "_", "b"]),
            (["/etc"], ["etc"]), (["a/b"], ["ab"]), (["a\0b"], ["ab"]), (["."], ["_"]),
            (["a\u{1}b"], ["a_b"]),
            (["a\\b"], ["ab"]), (["a\u{202E}b"], ["ab"]), (["日本語", "é.txt"], ["日本語", "é.txt"]),
        ])
    func unsafePaths(path: [String], sanitised: [String]) throws {
        let info = multiFileInfo([(path, 12, nil)])
        let metainfo = try Metainfo(parsing: torrentBytes(info: info))
        #expect(metainfo.info.files.map(\.path) == [sanitised])
    }

    @Test(
        "invalid UTF-8 becomes one _ per sequence; long elements are cut at 240 bytes keeping the extension")
    func sanitisedBytes() throws {
        let cases: [([UInt8], String)] = [
            ([0xFF, 0xFE], "__"), ([0xC0, 0xAF], "_"), ([0xED, 0xA0, 0x80], "_"), ([0xE6, 0x97], "_"),
            ([0xF8, 0x88, 0x80, 0x80, 0x80, 0x7A], "_z"), ([0x61, 0x7F, 0x62], "a\u{7F}b"),
            (
                Array(repeating: 0x79, count: 300) + Array(".mkv".utf8),
                String(repeating: "y", count: 240) + ".mkv"
            ),
        ]
        for (bytes, expected) in cases {
            let info: BencodeValue = [
                "name": "top", "piece length": 16_384, "pieces": .bytes(helloPiece),
                "files": [["length": 12, "path": [.bytes(bytes)]]],
            ]
            let metainfo = try Metainfo(parsing: torrentBytes(info: info))
            #expect(metainfo.info.files[0].path == [expected], "\(bytes)")
        }
    }

    @Test("clashing paths are renamed name.N.ext, a file in a later directory's way too; case matters")
    func clashes() throws {
        let info = multiFileInfo([
            (["a"], 1, nil), (["a"], 1, nil), (["a.1"], 1, nil), (["x.tar.gz"], 1, nil),
            (["X.TAR.GZ"], 1, nil), (["x.tar.gz"], 1, nil),
            (["d"], 1, nil), (["d", "e"], 1, nil), (["a/b"], 1, nil), (["ab"], 1, nil), (["ab"], 7, nil),
        ])
        let metainfo = try Metainfo(parsing: torrentBytes(info: info))
        #expect(
            metainfo.info.files.map { $0.path.joined(separator: "/") } == [
                "a", "a.1", "a.1.1", "x.tar.gz", "X.TAR.GZ", "x.tar.1.gz", "d.1", "d/e", "ab", "ab.1", "ab.2",
            ])
    }

    @Test("an unsafe name is refused too")
    func unsafeName() {
        let info: BencodeValue = [
            "name": "..", "length": 12, "piece length": 16_384, "pieces": .bytes(helloPiece),
        ]
        #expect(throws: MetainfoError.unsafePath([".."], offset: 26)) {
            try Metainfo(parsing: torrentBytes(info: info))
        }
    }

    @Test("the piece count must match the total length")
    func pieceCount() {
        let info: BencodeValue = [
            "name": "x", "length": 16_385, "piece length": 16_384, "pieces": .bytes(helloPiece),
        ]
        #expect(throws: MetainfoError.pieceCountMismatch(expected: 2, found: 1, offset: 62)) {
            try Metainfo(parsing: torrentBytes(info: info))
        }
    }

    @Test("bad input: wrong types, missing fields and hostile sizes name the field and the byte")
    func badInput() {
        let wrongType: BencodeValue = [
            "name": "x", "length": 12, "piece length": "big", "pieces": .bytes(helloPiece),
        ]
        #expect(throws: MetainfoError.wrongType("info.piece length", expected: "an integer", offset: 44)) {
            try Metainfo(parsing: torrentBytes(info: wrongType))
        }
        #expect(throws: MetainfoError.missingField("info", offset: 0)) { try Metainfo(parsing: bytes("de")) }
        #expect(throws: MetainfoError.wrongType("(top level)", expected: "a dictionary", offset: 0)) {
            try Metainfo(parsing: bytes("le"))
        }
        #expect(throws: MetainfoError.bencode(.stringBeyondEnd(length: 999_999_999_999, offset: 7))) {
            try Metainfo(parsing: bytes("d4:info999999999999:xe"))
        }
        let deep = bytes("d4:info" + String(repeating: "l", count: 5_000))
        #expect(throws: MetainfoError.bencode(.depthLimitExceeded(limit: 100, offset: 106))) {
            try Metainfo(parsing: deep)
        }
        let zero: BencodeValue = ["name": "x", "length": 0, "piece length": 16_384, "pieces": ""]
        #expect(throws: MetainfoError.self) { try Metainfo(parsing: torrentBytes(info: zero)) }
        let negative: BencodeValue = ["name": "x", "length": -1, "piece length": 16_384, "pieces": ""]
        #expect(throws: MetainfoError.invalidValue("info.length", reason: "is negative", offset: 16)) {
            try Metainfo(parsing: torrentBytes(info: negative))
        }
        #expect(
            MetainfoError.missingField("info", offset: 0).description == "missing field 'info' (at byte 0)")
    }

    @Test("hostile mutations of a real torrent never trap")
    func mutations() throws {
        var rng = SeededGenerator(state: 99)
        let base = torrentBytes(
            info: multiFileInfo([(["a"], 20_000, nil), (["b", "c"], 30_000, "x")]), ["announce": "http://t/a"]
        )
        for _ in 0..<3_000 {
            var input = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let position = Int.random(in: 0..<input.count, using: &rng)
                input[position] = UInt8.random(in: 0...255, using: &rng)
            }
            do {
                let parsed = try Metainfo(parsing: input)
                #expect(parsed.info.pieceCount * parsed.info.pieceLength >= Int(parsed.info.totalLength))
            } catch {
                #expect(error.offset >= 0 && error.offset <= input.count)
            }
        }
    }
}
