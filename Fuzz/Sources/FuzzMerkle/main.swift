import Bencode
import BitTorrent
import FuzzSupport

/// BEP 52 hash messages against the merkle trees of a v2 torrent made here (a file of 40
/// pieces, a file of one piece): any request gives an answer or a refusal, never a trap; every
/// answer we give passes our own check; any `hashes` message is checked without trapping.
let torrent: (merkle: MerklePieces, leaves: [[[UInt8]]]) = {
    func file(_ size: Int, _ seed: UInt8) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7) ^ seed }
    }
    let files = [("a.bin", file(40 * 32_768 - 5, 1)), ("b.bin", file(20_000, 2))]
    var tree: [String: BencodeValue] = [:]
    var layers: [[UInt8]: [UInt8]] = [:]
    var leavesOfFiles: [[[UInt8]]] = []
    for (name, bytes) in files {
        let leaves = stride(from: 0, to: bytes.count, by: MerkleTree.blockSize).map {
            MerkleTree.leaf(bytes[$0..<min($0 + MerkleTree.blockSize, bytes.count)])
        }
        leavesOfFiles.append(leaves)
        let root = MerkleTree.root(leaves: leaves)
        tree[name] = ["": ["length": .integer(Int64(bytes.count)), "pieces root": .bytes(root)]]
        if bytes.count > 32_768 {
            layers[root] = MerkleTree.pieceLayer(leaves: leaves, pieceLength: 32_768).flatMap { $0 }
        }
    }
    let info: BencodeValue = [
        "name": "t", "piece length": 32_768, "meta version": 2,
        "file tree": .dictionary(
            Dictionary(uniqueKeysWithValues: tree.map { (Array($0.key.utf8), $0.value) })),
    ]
    guard let node = try? BencodeDecoder().decodeNode(info.encoded()),
        let parsed = try? InfoDictionary(node: node)
    else { fatalError("the fuzz target's own v2 torrent does not load") }
    return (MerklePieces(info: parsed, pieceLayers: layers), leavesOfFiles)
}()

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMerkle(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    guard bytes.count > 1 else { return 0 }
    // The first byte picks a file's root to aim at, so requests reach the trees.
    let file = torrent.merkle.files[Int(bytes[0]) % torrent.merkle.files.count]
    guard let message = try? PeerWireCodec.decode(bytes[1...]) else { return 0 }
    switch message {
    case .hashRequest(var request), .hashReject(var request):
        if bytes[0] & 0x80 != 0 { request.piecesRoot = file.root }
        // The true leaves of the piece an answer needs (two per 32 KiB piece).
        let target = torrent.merkle.file(root: request.piecesRoot)
        let leaves = torrent.merkle.leafPiece(for: request).flatMap { piece in
            target.map { position in
                let first = (piece - torrent.merkle.files[position].firstPiece) * 2
                return Array(torrent.leaves[position].dropFirst(first).prefix(2))
            }
        }
        if let answer = torrent.merkle.answer(request, leaves: leaves), let target {
            precondition(torrent.merkle.accepts(request))
            precondition(answer.count == request.length + request.uncleCount, "answer of the wrong size")
            let file = torrent.merkle.files[target]
            let top = request.baseLayer + request.subtreeHeightForFuzzing + request.uncleCount
            if top == file.height || (file.needsLayer && top >= torrent.merkle.pieceHeight) {
                precondition(
                    torrent.merkle.verify(request, hashes: answer) == Array(answer.prefix(request.length)),
                    "our own answer failed our check")
            }
        }
    case .hashes(var request, let hashes):
        if bytes[0] & 0x80 != 0 { request.piecesRoot = file.root }
        _ = torrent.merkle.verify(request, hashes: hashes)
    default:
        break
    }
    return 0
}

extension HashRequest {
    var subtreeHeightForFuzzing: Int { length.trailingZeroBitCount }
}

runFuzzer(fuzzMerkle)
