import Bencode

/// Bounds applied when reading metainfo from an untrusted source.
public struct MetainfoLimits: Sendable, Hashable {
    /// Largest `.torrent` file, in bytes.
    public var maxTorrentSize: Int = 64 << 20
    /// Deepest nesting of bencode lists and dictionaries.
    public var maxDepth: Int = 100
    /// Most bencode values in the file.
    public var maxElements: Int = 4_000_000
    /// Most pieces (libtorrent's default `max_pieces` is the same).
    public var maxPieces: Int = 0x20_0000
    /// Most files.
    public var maxFiles: Int = 1_000_000
    /// Most components in one file path.
    public var maxPathDepth: Int = 128
    /// Largest piece length: libtorrent 2.0's, 1 GiB − 1. Pieces are hashed in windows of a
    /// few MiB, so the memory a check needs does not grow with it.
    public var maxPieceLength: Int = (1 << 30) - 1

    public init() {}

    /// The defaults.
    public static let standard = MetainfoLimits()

    var bencode: BencodeDecoder.Limits {
        BencodeDecoder.Limits(maxDepth: maxDepth, maxElements: maxElements, maxInputSize: maxTorrentSize)
    }
}

/// Which info-hashes and piece hashes a torrent has (BEP 52).
public enum MetaVersion: String, Hashable, Sendable {
    /// BEP 3: SHA-1 piece hashes, one info-hash.
    case v1
    /// BEP 52 only: a file tree with per-file merkle roots; the info-hash is SHA-256.
    case v2
    /// Both views of the same data, with both info-hashes.
    case hybrid

    public var hasV1: Bool { self != .v2 }
    public var hasV2: Bool { self != .v1 }
}

/// A torrent's info dictionary (BEP 3, BEP 52): the part its info-hash covers.
///
/// Every key is kept in ``fields``, unknown ones too, so that re-encoding keeps them
/// (`meta version`, `file tree` of hybrid torrents, `source`, …). The typed properties are
/// checked views of those fields.
public struct InfoDictionary: Hashable, Sendable {
    /// All keys of the dictionary as read.
    public let fields: [[UInt8]: BencodeValue]
    /// The suggested name of the file (single-file) or directory (multi-file); `name.utf-8`
    /// is preferred when present.
    public let name: String
    /// Bytes per piece (the last piece may be shorter).
    public let pieceLength: Int
    /// The concatenated 20-byte SHA-1 of every piece; empty in a v2-only torrent.
    public let pieceHashes: [UInt8]
    /// The files in torrent order, padding files included.
    public let files: [FileEntry]
    /// Whether the torrent uses the `files` list (a directory) rather than `length` (one file).
    public let isMultiFile: Bool
    /// BEP 27: peers come only from the torrent's trackers (no DHT, PEX or LSD).
    public let isPrivate: Bool
    /// Sum of all file lengths, padding included.
    public let totalLength: Int64

    /// Number of pieces (in a v2 torrent, with each file aligned to a piece boundary).
    public let pieceCount: Int
    /// Which views the torrent has (BEP 52).
    public let version: MetaVersion

    /// The SHA-1 expected for piece `index`; empty when the torrent has no v1 view (no SHA-1
    /// matches it).
    public func pieceHash(_ index: Int) -> ArraySlice<UInt8> {
        guard index >= 0, index * 20 + 20 <= pieceHashes.count else { return [] }
        return pieceHashes[index * 20..<index * 20 + 20]
    }

    /// The size of piece `index`: `pieceLength`, or less for the last piece.
    public func pieceSize(_ index: Int) -> Int {
        let start = Int64(index) * Int64(pieceLength)
        return Int(min(Int64(pieceLength), totalLength - start))
    }

    /// Where `file` goes below a download directory: `name/path…` for a multi-file torrent,
    /// `name` for a single file.
    public func relativePath(of file: FileEntry) -> [String] {
        isMultiFile ? [name] + file.path : [name]
    }

    /// The canonical bencoding of every field (unknown ones included).
    public func encoded() -> [UInt8] {
        BencodeValue.dictionary(fields).encoded()
    }

    /// Reads and checks an info dictionary; offsets in errors are those of `node`'s input.
    /// Paths are sanitised as libtorrent does (``PathSanitizer``); `infoHash` names a directory
    /// whose own name sanitises to nothing.
    public init(node: BencodeNode, limits: MetainfoLimits = .standard, infoHash: InfoHash? = nil)
        throws(MetainfoError)
    {
        guard case .dictionary = node.kind else {
            throw .wrongType("info", expected: "a dictionary", offset: node.range.lowerBound)
        }
        guard case .dictionary(let fields) = node.value else {
            throw .wrongType("info", expected: "a dictionary", offset: node.range.lowerBound)
        }
        self.fields = fields

        let nameNode = try Self.required(node, "name", in: "info")
        guard let rawName = nameNode.bytes else {
            throw .wrongType("info.name", expected: "a string", offset: nameNode.range.lowerBound)
        }
        let nameBytes = node["name.utf-8"]?.bytes ?? rawName

        let pieceLengthNode = try Self.required(node, "piece length", in: "info")
        guard let pieceLength = pieceLengthNode.integer else {
            throw .wrongType(
                "info.piece length", expected: "an integer", offset: pieceLengthNode.range.lowerBound)
        }
        guard pieceLength > 0, pieceLength <= limits.maxPieceLength else {
            throw .invalidValue(
                "info.piece length",
                reason: "must be between 1 and \(limits.maxPieceLength), not \(pieceLength)",
                offset: pieceLengthNode.range.lowerBound)
        }
        self.pieceLength = Int(pieceLength)

        // BEP 52: `meta version` 2 with a `file tree` is v2; with `pieces` as well, hybrid.
        var tree: [FileTree.File]?
        if let versionNode = node["meta version"] {
            guard let version = versionNode.integer else {
                throw .wrongType(
                    "info.meta version", expected: "an integer", offset: versionNode.range.lowerBound)
            }
            switch version {
            case 1:
                break
            case 2:
                let treeNode = try Self.required(node, "file tree", in: "info")
                tree = try FileTree.files(treeNode, limits: limits)
            default:
                throw .invalidValue(
                    "info.meta version", reason: "is \(version); PeerStack knows versions 1 and 2",
                    offset: versionNode.range.lowerBound)
            }
        }
        let piecesNode = node["pieces"]
        if tree == nil, piecesNode == nil, let treeNode = node["file tree"] {
            throw .invalidValue(
                "info.meta version", reason: "is not 2, yet the torrent has a v2 file tree",
                offset: treeNode.range.lowerBound)
        }
        if tree != nil {
            guard pieceLength >= MerkleTree.blockSize, pieceLength.nonzeroBitCount == 1 else {
                throw .invalidValue(
                    "info.piece length", reason: "must be a power of two of at least 16 KiB in a v2 torrent",
                    offset: pieceLengthNode.range.lowerBound)
            }
        }

        if let privateNode = node["private"], let flag = privateNode.integer {
            self.isPrivate = flag == 1
        } else {
            self.isPrivate = false
        }

        let layout: Layout
        if let piecesNode {
            layout = try Self.v1Layout(
                node, pieces: piecesNode, nameBytes: nameBytes, nameNode: nameNode,
                pieceLength: Int(pieceLength),
                limits: limits, infoHash: infoHash)
            if let tree, let treeNode = node["file tree"] {
                try Self.checkHybrid(
                    layout, tree, pieceLength: Int(pieceLength), at: treeNode.range.lowerBound)
            }
        } else if let tree, let treeNode = node["file tree"] {
            layout = try Self.v2Layout(
                tree, nameBytes: nameBytes, pieceLength: Int(pieceLength), limits: limits, infoHash: infoHash,
                at: treeNode.range.lowerBound)
        } else {
            throw .missingField("info.pieces", offset: node.range.lowerBound)
        }
        var files = layout.files
        if let tree { Self.attachRoots(tree, to: &files) }
        self.files = files
        self.name = layout.name
        self.isMultiFile = layout.isMultiFile
        self.totalLength = layout.totalLength
        self.pieceHashes = layout.pieceHashes
        self.pieceCount = layout.pieceCount
        self.version = tree == nil ? .v1 : piecesNode == nil ? .v2 : .hybrid
    }

    /// The files and pieces as read from one view of the torrent.
    private struct Layout {
        var files: [FileEntry]
        var name: String
        var isMultiFile: Bool
        var totalLength: Int64
        var pieceHashes: [UInt8]
        var pieceCount: Int
    }

    /// BEP 3's view: `pieces` and `length` or `files`.
    private static func v1Layout(
        _ node: BencodeNode, pieces piecesNode: BencodeNode, nameBytes: [UInt8], nameNode: BencodeNode,
        pieceLength: Int, limits: MetainfoLimits, infoHash: InfoHash?
    ) throws(MetainfoError) -> Layout {
        guard let pieces = piecesNode.bytes else {
            throw .wrongType("info.pieces", expected: "a byte string", offset: piecesNode.range.lowerBound)
        }
        guard pieces.count % 20 == 0 else {
            throw .invalidValue(
                "info.pieces", reason: "has \(pieces.count) bytes, not a multiple of 20",
                offset: piecesNode.range.lowerBound)
        }
        guard pieces.count / 20 <= limits.maxPieces else {
            throw .limitExceeded(
                "more than \(limits.maxPieces) pieces (\(pieces.count / 20))",
                offset: piecesNode.range.lowerBound)
        }
        let lengthNode = node["length"]
        let filesNode = node["files"]
        var files: [FileEntry] = []
        var total: Int64 = 0
        let name: String
        let isMultiFile: Bool
        if let filesNode {
            guard let list = filesNode.list else {
                throw .wrongType("info.files", expected: "a list", offset: filesNode.range.lowerBound)
            }
            guard !list.isEmpty else {
                throw .invalidValue("info.files", reason: "is empty", offset: filesNode.range.lowerBound)
            }
            guard list.count <= limits.maxFiles else {
                throw .limitExceeded("more than \(limits.maxFiles) files", offset: filesNode.range.lowerBound)
            }
            files.reserveCapacity(list.count)
            for (index, entry) in list.enumerated() {
                let file = try Self.fileEntry(entry, index: index, offset: total, limits: limits)
                let (sum, overflow) = total.addingReportingOverflow(file.length)
                guard !overflow else {
                    throw .invalidValue(
                        "info.files", reason: "lengths add up past 2^63", offset: entry.range.lowerBound)
                }
                total = sum
                files.append(file)
            }
            files = Self.resolveClashes(files)
            // A directory name that sanitises to nothing (`..`) becomes the info-hash, as in
            // libtorrent.
            name = PathSanitizer.element(nameBytes) ?? infoHash?.hex ?? "_"
            isMultiFile = true
        } else if let lengthNode {
            guard let length = lengthNode.integer else {
                throw .wrongType("info.length", expected: "an integer", offset: lengthNode.range.lowerBound)
            }
            guard length >= 0 else {
                throw .invalidValue("info.length", reason: "is negative", offset: lengthNode.range.lowerBound)
            }
            let attributes = node["attr"]?.bytes.map(FileAttributes.init(attr:)) ?? []
            // libtorrent refuses a single file whose name sanitises to nothing.
            guard let single = PathSanitizer.element(nameBytes) else {
                throw .unsafePath(
                    [String(decoding: nameBytes, as: UTF8.self)], offset: nameNode.range.lowerBound)
            }
            name = single
            files = [FileEntry(path: [name], length: length, offset: 0, attributes: attributes)]
            total = length
            isMultiFile = false
        } else {
            throw .missingField("info.length' or 'info.files", offset: node.range.lowerBound)
        }
        guard total > 0 else {
            throw .invalidValue(
                isMultiFile ? "info.files" : "info.length",
                reason: "adds up to 0 bytes: the torrent holds no data",
                offset: (filesNode ?? lengthNode ?? node).range.lowerBound)
        }
        let (quotient, remainder) = total.quotientAndRemainder(dividingBy: Int64(pieceLength))
        let expected = quotient + (remainder > 0 ? 1 : 0)
        guard expected == Int64(pieces.count / 20) else {
            throw .pieceCountMismatch(
                expected: Int(clamping: expected), found: pieces.count / 20,
                offset: piecesNode.range.lowerBound)
        }
        return Layout(
            files: files, name: name, isMultiFile: isMultiFile, totalLength: total, pieceHashes: pieces,
            pieceCount: pieces.count / 20)
    }

    /// BEP 52's view alone: the file tree's files in order, each aligned to a piece boundary by
    /// a pad file after it (as libtorrent lays out a v2 torrent, the last file included).
    private static func v2Layout(
        _ tree: [FileTree.File], nameBytes: [UInt8], pieceLength: Int, limits: MetainfoLimits,
        infoHash: InfoHash?, at offset: Int
    ) throws(MetainfoError) -> Layout {
        // One file at the top of the tree is a single-file torrent, named by its key.
        if tree.count == 1, tree[0].elements.count == 1 {
            guard let single = PathSanitizer.element(tree[0].elements[0]) else {
                throw .unsafePath(
                    [String(decoding: tree[0].elements[0], as: UTF8.self)], offset: tree[0].offset)
            }
            let file = FileEntry(
                path: [single], length: tree[0].length, offset: 0, attributes: tree[0].attributes)
            return try finish([file], name: single, isMultiFile: false)
        }
        var files: [FileEntry] = []
        var total: Int64 = 0
        for file in tree {
            files.append(
                FileEntry(
                    path: PathSanitizer.path(file.elements), length: file.length, offset: total,
                    attributes: file.attributes.subtracting(.padding)))
            let (sum, overflow) = total.addingReportingOverflow(file.length)
            guard !overflow, sum <= Int64.max / 2 else {
                throw .invalidValue("info.file tree", reason: "lengths add up past 2^62", offset: file.offset)
            }
            total = sum
            let tail = Int(total % Int64(pieceLength))
            if file.length > 0, tail != 0 {
                let pad = Int64(pieceLength - tail)
                files.append(
                    FileEntry(path: [".pad", "\(pad)"], length: pad, offset: total, attributes: .padding))
                total += pad
            }
        }
        let name = PathSanitizer.element(nameBytes) ?? infoHash?.hex ?? "_"
        return try finish(Self.resolveClashes(files), name: name, isMultiFile: true)

        func finish(_ files: [FileEntry], name: String, isMultiFile: Bool) throws(MetainfoError) -> Layout {
            let total = files.reduce(Int64(0)) { $0 + $1.length }
            guard total > 0 else {
                throw .invalidValue(
                    "info.file tree", reason: "adds up to 0 bytes: the torrent holds no data", offset: offset)
            }
            let count = (total + Int64(pieceLength) - 1) / Int64(pieceLength)
            guard count <= Int64(limits.maxPieces) else {
                throw .limitExceeded("more than \(limits.maxPieces) pieces (\(count))", offset: offset)
            }
            return Layout(
                files: files, name: name, isMultiFile: isMultiFile, totalLength: total, pieceHashes: [],
                pieceCount: Int(count))
        }
    }

    /// A hybrid torrent's two views must describe the same data (BEP 52): the v1 files, pads
    /// aside, are the tree's files in its order with the same paths and lengths, and each file
    /// with data starts on a piece boundary. libtorrent refuses a mismatch, and so does this.
    private static func checkHybrid(_ v1: Layout, _ tree: [FileTree.File], pieceLength: Int, at offset: Int)
        throws(MetainfoError)
    {
        let real = v1.files.filter { !$0.isPadding }
        func mismatch(_ what: String) -> MetainfoError {
            .invalidValue(
                "info.file tree", reason: "does not describe the same data as info.files: \(what)",
                offset: offset)
        }
        guard real.count == tree.count else {
            throw mismatch("\(tree.count) files in the tree, \(real.count) in the v1 list")
        }
        for (index, (file, entry)) in zip(real, tree).enumerated() {
            let path = v1.isMultiFile ? PathSanitizer.path(entry.elements) : file.path
            guard file.length == entry.length, !v1.isMultiFile || path == file.path else {
                throw mismatch(
                    "file \(index) is \(file.path.joined(separator: "/")) (\(file.length) bytes) in the v1 list, \(path.joined(separator: "/")) (\(entry.length) bytes) in the tree"
                )
            }
            guard file.length == 0 || file.offset % Int64(pieceLength) == 0 else {
                throw mismatch(
                    "\(file.path.joined(separator: "/")) does not start on a piece boundary (no pad file before it)"
                )
            }
        }
    }

    /// Gives each file with data its `pieces root` from the tree, in order.
    private static func attachRoots(_ tree: [FileTree.File], to files: inout [FileEntry]) {
        var next = tree.makeIterator()
        for index in files.indices where !files[index].isPadding {
            files[index].piecesRoot = next.next()?.piecesRoot
        }
    }

    private static func fileEntry(
        _ node: BencodeNode, index: Int, offset: Int64, limits: MetainfoLimits
    ) throws(MetainfoError) -> FileEntry {
        let field = "info.files[\(index)]"
        guard case .dictionary = node.kind else {
            throw .wrongType(field, expected: "a dictionary", offset: node.range.lowerBound)
        }
        let lengthNode = try required(node, "length", in: field)
        guard let length = lengthNode.integer else {
            throw .wrongType("\(field).length", expected: "an integer", offset: lengthNode.range.lowerBound)
        }
        guard length >= 0 else {
            throw .invalidValue("\(field).length", reason: "is negative", offset: lengthNode.range.lowerBound)
        }
        let attributes = node["attr"]?.bytes.map(FileAttributes.init(attr:)) ?? []
        // `path.utf-8` wins when it is a usable list; the elements are sanitised as libtorrent
        // does, and a pad file without a path goes to `.pad/<length>`.
        var elements: [[UInt8]] = []
        let pathNode = node["path"]
        if let utf8Node = node["path.utf-8"],
            let utf8Path = try? components(utf8Node, field: "\(field).path.utf-8", limits: limits),
            !utf8Path.isEmpty
        {
            elements = utf8Path
        } else if let pathNode {
            elements = try components(pathNode, field: "\(field).path", limits: limits)
        }
        let path: [String]
        if !elements.isEmpty {
            path = PathSanitizer.path(elements)
        } else if attributes.contains(.padding) {
            path = [".pad", "\(length)"]
        } else {
            guard let pathNode else { throw .missingField("\(field).path", offset: node.range.lowerBound) }
            throw .unsafePath([], offset: pathNode.range.lowerBound)
        }
        var target: [String]?
        if attributes.contains(.symlink), let targetNode = node["symlink path"] {
            target = try components(targetNode, field: "\(field).symlink path", limits: limits)
                .compactMap(PathSanitizer.element)
        }
        return FileEntry(
            path: path, length: length, offset: offset, attributes: attributes, symlinkTarget: target)
    }

    private static func components(
        _ node: BencodeNode, field: String, limits: MetainfoLimits
    ) throws(MetainfoError) -> [[UInt8]] {
        guard let list = node.list else {
            throw .wrongType(field, expected: "a list of strings", offset: node.range.lowerBound)
        }
        guard list.count <= limits.maxPathDepth else {
            throw .limitExceeded(
                "'\(field)' has more than \(limits.maxPathDepth) components", offset: node.range.lowerBound)
        }
        var result: [[UInt8]] = []
        result.reserveCapacity(list.count)
        for component in list {
            guard let bytes = component.bytes else {
                throw .wrongType(field, expected: "a list of strings", offset: component.range.lowerBound)
            }
            result.append(bytes)
        }
        return result
    }

    /// Files whose sanitised paths clash (with each other, case aside, or with a directory)
    /// renamed as libtorrent renames them; symlinks whose target is not in the torrent point to
    /// themselves (libtorrent does the same), so none leads outside it.
    private static func resolveClashes(_ files: [FileEntry]) -> [FileEntry] {
        let paths = PathSanitizer.deduplicated(files.map(\.path), skip: files.map(\.isPadding))
        var result = files
        var inside = Set<[String]>()
        for path in paths {
            for depth in 1...max(path.count, 1) { inside.insert(Array(path.prefix(depth))) }
        }
        for index in result.indices {
            result[index].path = paths[index]
            if let target = result[index].symlinkTarget, target.isEmpty || !inside.contains(target) {
                result[index].symlinkTarget = paths[index]
            }
        }
        return result
    }

    private static func required(_ node: BencodeNode, _ key: String, in parent: String) throws(MetainfoError)
        -> BencodeNode
    {
        guard let value = node[key] else {
            throw .missingField("\(parent).\(key)", offset: node.range.lowerBound)
        }
        return value
    }

}
