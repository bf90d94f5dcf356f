/// A BEP 52 hash request, as the `hash request`, `hashes` and `hash reject` messages carry it:
/// `length` hashes of the layer `baseLayer` levels above the leaves of the file whose tree has
/// the root `piecesRoot`, from `index` on, with the uncle hashes that prove them up to
/// `proofLayers` layers above the base.
public struct HashRequest: Hashable, Sendable, CustomStringConvertible {
    public var piecesRoot: [UInt8]
    public var baseLayer: Int
    public var index: Int
    public var length: Int
    public var proofLayers: Int

    public init(piecesRoot: [UInt8], baseLayer: Int, index: Int, length: Int, proofLayers: Int) {
        self.piecesRoot = piecesRoot
        self.baseLayer = baseLayer
        self.index = index
        self.length = length
        self.proofLayers = proofLayers
    }

    public var description: String {
        let root = piecesRoot.prefix(4).map { String($0, radix: 16) }.joined()
        return "hashes \(index)..<\(index + length) of layer \(baseLayer) of file \(root)…"
    }

    /// Layers spanned by the requested hashes themselves (log2 of `length`).
    var subtreeHeight: Int { MerkleTree.log2(length) }

    /// Uncle hashes a `hashes` answer carries after the base hashes: BEP 52 omits a proof
    /// layer that lies inside the subtree of the requested hashes.
    public var uncleCount: Int { max(0, proofLayers - subtreeHeight + 1) }
}

/// What a v2 piece must hash to (BEP 52): the merkle root of its 16 KiB blocks (the file's
/// bytes in the piece; the padding after a file is not hashed), the leaves padded with zero
/// hashes to `leafWidth`.
public struct PieceCheck: Sendable, Hashable {
    public var expected: [UInt8]
    /// Bytes of the file in the piece.
    public var dataLength: Int
    /// Leaves of the piece's subtree: a piece's blocks for a file of several pieces, the
    /// file's blocks rounded up to a power of two for a file of one piece.
    public var leafWidth: Int

    /// Whether `leaves` (one SHA-256 per block of the piece's data) hash to the expected node.
    public func matches(_ leaves: [[UInt8]]) -> Bool {
        leaves.count <= leafWidth && MerkleTree.root(layer: leaves, paddedTo: leafWidth) == expected
    }
}

/// The v2 hashes of a torrent's pieces (BEP 52): in the v2 layout each piece lies in one file;
/// a piece of a file longer than a piece is checked against the file's piece layer (from the
/// torrent's `piece layers`, or fetched from peers with hash requests), a file of one piece
/// against its `pieces root`. Answers peers' hash requests from the layers (and, for leaves,
/// from blocks read from disk), and checks the proofs of the hashes peers send.
public struct MerklePieces: Sendable {
    /// One file with data.
    public struct File: Sendable {
        /// Its index in the info dictionary's files.
        public let fileIndex: Int
        public let root: [UInt8]
        public let length: Int64
        public let firstPiece: Int
        public let pieceCount: Int
        /// The tree's height above its leaves (its 16 KiB blocks, padded to a power of two).
        public let height: Int
        /// Whether the file needs a piece layer (it is longer than a piece).
        public var needsLayer: Bool { pieceCount > 1 }
        /// The layers from the piece layer (padded) up to the root, once the layer is known.
        fileprivate(set) var upper: [[[UInt8]]] = []
        /// The piece layer (one hash per piece), when known.
        public var layer: ArraySlice<[UInt8]>? { upper.first.map { $0.prefix(pieceCount) } }
    }

    /// Most hashes answered in one message (libtorrent's limit too: a piece of 128 MiB).
    public static let maxRequestLength = 8_192
    /// Hashes per piece-layer request (BEP 52: SHOULD NOT be more than 512).
    public static let layerChunk = 512

    public let pieceLength: Int
    /// Height of the piece layer above the leaves.
    public let pieceHeight: Int
    public private(set) var files: [File] = []
    private var byRoot: [[UInt8]: Int] = [:]

    /// The hashes of `info`'s v2 view, with the piece layers known so far (`piece layers`:
    /// root → concatenated hashes, already checked against their roots).
    public init(info: InfoDictionary, pieceLayers: [[UInt8]: [UInt8]]) {
        pieceLength = info.pieceLength
        pieceHeight = MerkleTree.pieceHeight(pieceLength: info.pieceLength)
        for (index, file) in info.files.enumerated() where !file.isPadding && file.length > 0 {
            guard let root = file.piecesRoot else { continue }
            let blocks = Int((file.length + Int64(MerkleTree.blockSize) - 1) / Int64(MerkleTree.blockSize))
            let pieces = Int((file.length + Int64(pieceLength) - 1) / Int64(pieceLength))
            byRoot[root] = files.count
            files.append(
                File(
                    fileIndex: index, root: root, length: file.length,
                    firstPiece: Int(file.offset / Int64(pieceLength)), pieceCount: pieces,
                    height: MerkleTree.log2(MerkleTree.width(blocks))))
            if pieces > 1, let bytes = pieceLayers[root] {
                let hashes = stride(from: 0, to: bytes.count, by: MerkleTree.hashSize).map {
                    Array(bytes[$0..<min($0 + MerkleTree.hashSize, bytes.count)])
                }
                _ = setLayer(hashes, forFile: files.count - 1)
            }
        }
    }

    /// Whether every piece can be checked (every layer needed is known).
    public var isComplete: Bool { files.allSatisfy { !$0.needsLayer || !$0.upper.isEmpty } }

    /// The layers known, as `piece layers` holds them (root → concatenated hashes).
    public var pieceLayers: [[UInt8]: [UInt8]] {
        var layers: [[UInt8]: [UInt8]] = [:]
        for file in files where file.needsLayer {
            if let layer = file.layer { layers[file.root] = layer.flatMap { $0 } }
        }
        return layers
    }

    /// The position in ``files`` of the file with this root.
    public func file(root: [UInt8]) -> Int? { byRoot[root] }

    /// The position in ``files`` of the file that holds `piece`.
    public func file(containing piece: Int) -> Int? {
        var low = 0
        var high = files.count
        while low < high {
            let mid = (low + high) / 2
            if files[mid].firstPiece + files[mid].pieceCount <= piece { low = mid + 1 } else { high = mid }
        }
        guard low < files.count, files[low].firstPiece <= piece else { return nil }
        return low
    }

    /// What `piece` must hash to; nil when its file's layer is not known yet (or it holds no data).
    public func check(piece: Int) -> PieceCheck? {
        guard let position = file(containing: piece) else { return nil }
        let file = files[position]
        let relative = piece - file.firstPiece
        let start = Int64(relative) * Int64(pieceLength)
        let dataLength = Int(min(Int64(pieceLength), file.length - start))
        guard file.needsLayer else {
            return PieceCheck(expected: file.root, dataLength: dataLength, leafWidth: 1 << file.height)
        }
        guard let layer = file.upper.first else { return nil }
        return PieceCheck(
            expected: layer[relative], dataLength: dataLength, leafWidth: pieceLength / MerkleTree.blockSize)
    }

    /// Sets a file's piece layer if it leads to the file's root. False when it does not.
    @discardableResult
    public mutating func setLayer(_ hashes: [[UInt8]], forFile position: Int) -> Bool {
        let file = files[position]
        guard file.needsLayer, hashes.count == file.pieceCount,
            hashes.allSatisfy({ $0.count == MerkleTree.hashSize })
        else { return false }
        let layers = MerkleTree.layers(
            above: hashes, height: pieceHeight, paddedTo: 1 << (file.height - pieceHeight))
        guard layers.last == [file.root] else { return false }
        files[position].upper = layers
        return true
    }

    // MARK: Serving hash requests

    /// Whether a peer's request is well formed for a file of this torrent (BEP 52: `index` a
    /// multiple of `length`, a power of two; everything inside the file's tree). Requests for
    /// layers between the leaves and the piece layer are refused, as BEP 52 allows.
    public func accepts(_ request: HashRequest) -> Bool {
        guard let position = byRoot[request.piecesRoot] else { return false }
        let file = files[position]
        let layerSize = 1 << max(0, file.height - request.baseLayer)
        return request.length >= 1 && request.length <= Self.maxRequestLength
            && request.length & (request.length - 1) == 0 && request.baseLayer >= 0
            && request.baseLayer < file.height && request.index >= 0 && request.index % request.length == 0
            && request.index + request.length <= layerSize && request.proofLayers >= 0
            && request.proofLayers < file.height - request.baseLayer
            && (request.baseLayer == 0 || (file.needsLayer && request.baseLayer >= pieceHeight))
    }

    /// The piece whose leaves (its blocks' hashes, read from disk) an answer needs: a request
    /// for leaves must lie within one piece. Nil when the layers suffice.
    public func leafPiece(for request: HashRequest) -> Int? {
        guard let position = byRoot[request.piecesRoot] else { return nil }
        let file = files[position]
        let needsLeaves = request.baseLayer < pieceHeight || !file.needsLayer
        guard needsLeaves else { return nil }
        let perPiece = 1 << pieceHeight
        return file.firstPiece + request.index / perPiece
    }

    /// The hashes that answer `request` (the base hashes, then the uncles from the lowest
    /// layer up), or nil when it cannot be answered. `leaves` are the hashes of the blocks of
    /// ``leafPiece(for:)`` when that is not nil.
    public func answer(_ request: HashRequest, leaves: [[UInt8]]? = nil) -> [[UInt8]]? {
        guard accepts(request), let position = byRoot[request.piecesRoot] else { return nil }
        let file = files[position]
        let perPiece = 1 << pieceHeight
        // The layers of one piece's subtree, from its leaves, when the request starts below the piece layer.
        var lower: [[[UInt8]]] = []
        var pieceOffset = 0
        if let piece = leafPiece(for: request) {
            guard let leaves, let check = check(piece: piece), leaves.count <= check.leafWidth,
                request.index + request.length <= (piece - file.firstPiece) * perPiece + check.leafWidth
            else { return nil }
            lower = MerkleTree.layers(above: leaves, height: 0, paddedTo: check.leafWidth)
            guard lower.last == [check.expected] else { return nil }
            pieceOffset = (piece - file.firstPiece) * perPiece
        }
        func node(_ layer: Int, _ index: Int) -> [UInt8]? {
            if !file.upper.isEmpty, layer >= pieceHeight {
                let nodes = file.upper[layer - pieceHeight]
                return index < nodes.count ? nodes[index] : nil
            }
            guard layer < lower.count else { return nil }
            let local = index - (pieceOffset >> layer)
            return local >= 0 && local < lower[layer].count ? lower[layer][local] : nil
        }
        var hashes: [[UInt8]] = []
        hashes.reserveCapacity(request.length + request.uncleCount)
        for index in request.index..<request.index + request.length {
            guard let hash = node(request.baseLayer, index) else { return nil }
            hashes.append(hash)
        }
        var index = request.index >> request.subtreeHeight
        for step in 0..<request.uncleCount {
            guard let uncle = node(request.baseLayer + request.subtreeHeight + step, index ^ 1) else {
                return nil
            }
            hashes.append(uncle)
            index >>= 1
        }
        return hashes
    }

    // MARK: Checking hashes from peers

    /// The base hashes of a peer's answer to our `request`, if its proof leads to a node we
    /// know (the root, or the piece layer once known); nil when it does not.
    public func verify(_ request: HashRequest, hashes: [[UInt8]]) -> [[UInt8]]? {
        guard let position = byRoot[request.piecesRoot], request.length >= 1,
            request.length & (request.length - 1) == 0,
            hashes.count == request.length + request.uncleCount,
            hashes.allSatisfy({ $0.count == MerkleTree.hashSize })
        else { return nil }
        let file = files[position]
        let base = Array(hashes[0..<request.length])
        var node = MerkleTree.root(layer: base, paddedTo: request.length)
        var index = request.index >> request.subtreeHeight
        var layer = request.baseLayer + request.subtreeHeight
        for uncle in hashes[request.length...] {
            node = index & 1 == 0 ? MerkleTree.parent(node, uncle) : MerkleTree.parent(uncle, node)
            index >>= 1
            layer += 1
        }
        let known: [UInt8]?
        if layer == file.height {
            known = index == 0 ? file.root : nil
        } else if !file.upper.isEmpty, layer >= pieceHeight, layer - pieceHeight < file.upper.count {
            let nodes = file.upper[layer - pieceHeight]
            known = index < nodes.count ? nodes[index] : nil
        } else {
            known = nil
        }
        return known == node ? base : nil
    }

    /// The requests that fetch a file's piece layer: chunks of up to 512 hashes, each proved up
    /// to the root (BEP 52; the last chunk is rounded up to a power of two, as libtorrent asks).
    public func layerRequests(forFile position: Int) -> [HashRequest] {
        let file = files[position]
        guard file.needsLayer else { return [] }
        return stride(from: 0, to: file.pieceCount, by: Self.layerChunk).map { start in
            let length = min(Self.layerChunk, MerkleTree.width(file.pieceCount - start))
            return HashRequest(
                piecesRoot: file.root, baseLayer: pieceHeight, index: start, length: length,
                proofLayers: file.height - pieceHeight - 1)
        }
    }

    /// The request for the leaves of `piece` (to find which block of a failed piece was bad),
    /// proved up to the piece's node.
    public func leafRequest(piece: Int) -> HashRequest? {
        guard let position = file(containing: piece), let check = check(piece: piece) else { return nil }
        let file = files[position]
        let width = check.leafWidth
        guard width >= 2, width <= Self.maxRequestLength else { return nil }
        return HashRequest(
            piecesRoot: file.root, baseLayer: 0, index: (piece - file.firstPiece) << pieceHeight,
            length: width, proofLayers: MerkleTree.log2(width) - 1)
    }
}
