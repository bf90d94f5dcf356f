import Bencode
import Testing

@testable import BitTorrent

@Suite("Web seeds (BEP 19): URLs, range requests, the session's side")
struct WebSeedTests {
    /// A multi-file torrent: a (40,000 bytes), a pad to 65,536, b c (1,000 and 30,000 bytes).
    static func tree() throws -> InfoDictionary {
        let info: BencodeValue = [
            "name": "my tree", "piece length": 32_768, "pieces": .bytes([UInt8](repeating: 0, count: 20 * 3)),
            "files": [
                ["length": 40_000, "path": ["a.bin"]],
                ["length": 25_536, "path": [".pad", "25536"], "attr": "p"],
                ["length": 1_000, "path": ["sub", "b ü.bin"]],
                ["length": 30_000, "path": ["c.txt"]],
            ],
        ]
        return try InfoDictionary(node: try BencodeDecoder().decodeNode(info.encoded()))
    }

    @Test(
        "file URLs: a folder URL holds name/path (escaped); a single file's URL is the file unless it ends in /"
    )
    func urls() throws {
        let tree = try Self.tree()
        for base in ["http://h:81/seeds", "http://h:81/seeds/"] {
            let layout = WebSeedLayout(base: base, info: tree)
            #expect(layout.url(ofFile: 0) == "http://h:81/seeds/my%20tree/a.bin")
            #expect(layout.url(ofFile: 2) == "http://h:81/seeds/my%20tree/sub/b%20%C3%BC.bin")
        }
        let single: BencodeValue = [
            "name": "x y.iso", "piece length": 16_384, "length": 10,
            "pieces": .bytes([UInt8](repeating: 0, count: 20)),
        ]
        let info = try InfoDictionary(node: try BencodeDecoder().decodeNode(single.encoded()))
        #expect(WebSeedLayout(base: "https://h/file.iso", info: info).url(ofFile: 0) == "https://h/file.iso")
        #expect(WebSeedLayout(base: "https://h/dir/", info: info).url(ofFile: 0) == "https://h/dir/x%20y.iso")
    }

    @Test("a run across files becomes one range per file, padding never fetched")
    func fetches() throws {
        let layout = WebSeedLayout(base: "http://h/", info: try Self.tree())
        // Bytes 32,768..<90,000: the end of a, the pad, b, the start of c.
        let fetches = layout.fetches(for: 32_768..<90_000)
        #expect(fetches.map(\.fileIndex) == [0, 2, 3])
        #expect(fetches.map(\.fileRange) == [32_768..<40_000, 0..<1_000, 0..<23_464])
        #expect(fetches.map(\.offset) == [0, 32_768, 33_768])
        #expect(fetches.map(\.isWholeFile) == [false, true, false])
    }

    @Test("block requests group into runs of consecutive bytes, up to a size")
    func runs() {
        let blocks = [
            BlockRequest(piece: 1, offset: 0, length: 16_384),
            BlockRequest(piece: 0, offset: 16_384, length: 16_384),
            BlockRequest(piece: 0, offset: 0, length: 16_384),
            BlockRequest(piece: 3, offset: 0, length: 16_384),
            BlockRequest(piece: 1, offset: 16_384, length: 16_384),
        ]
        let runs = WebSeedLayout.runs(blocks, pieceLength: 32_768, maxBytes: 48 << 10)
        #expect(runs.map { $0.map(\.piece) } == [[0, 0, 1], [1], [3]])
    }

    @Test("Content-Range headers: good ones read, bad ones refused")
    func contentRange() {
        #expect(parseContentRange("bytes 0-99/1000")?.range == 0..<100)
        #expect(parseContentRange("bytes 5-5/*")?.range == 5..<6)
        for bad in ["bytes 9-3/10", "bytes -3/10", "bytes 1-x/3", "0-1", "bytes */10"] {
            #expect(parseContentRange(bad) == nil, "\(bad)")
        }
    }

    @Test("the session asks a web seed for many blocks at once, and a web seed banned for bad data is closed")
    func session() throws {
        let (info, _) = try makeTorrent(size: 2_000_000, pieceLength: 65_536, seed: 31)
        var session = TorrentSession(info: info, peerID: [UInt8](repeating: 1, count: 20), seed: 1)
        _ = session.storageReady(have: Bitfield(count: info.pieceCount), now: .zero)
        let key = PeerKey(100)
        let address = TorrentSession.webSeedAddress(0)
        #expect(!address.ip.isLoopback)
        let actions = session.webSeedConnected(key, address: address, now: .zero)
        let requests = actions.compactMap { action -> BlockRequest? in
            if case .send(key, .request(let request)) = action { return request }
            return nil
        }
        #expect(requests.count >= TorrentSession.webSeedRequests)
        #expect(session.hasPeer(key))
        // Every block of piece 0 came from the web seed and the piece failed: it is banned.
        var closed = false
        for request in requests where request.piece == 0 {
            _ = session.receivedBlock(
                piece: 0, offset: request.offset, data: .init(repeating: 0, count: request.length), from: key,
                now: .zero)
        }
        for action in session.pieceVerified(0, passed: false, blockDigests: nil, now: .zero) {
            if case .close(key, _, true) = action { closed = true }
        }
        #expect(closed && session.isBanned(address) && !session.hasPeer(key))
        #expect(session.webSeedConnected(key, address: address, now: .seconds(1)).isEmpty)
    }
}
