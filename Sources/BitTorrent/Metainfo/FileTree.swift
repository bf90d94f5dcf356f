import Bencode

/// BEP 52's `file tree`: nested dictionaries keyed by path element, a file being the
/// dictionary under the empty key (`length`, `pieces root`, `attr`). Read in the order the
/// dictionary holds its keys, which a canonical torrent has sorted: the v2 file order.
enum FileTree {
    /// One file as the tree names it.
    struct File {
        var elements: [[UInt8]]
        var length: Int64
        var piecesRoot: [UInt8]?
        var attributes: FileAttributes
        var offset: Int
    }

    /// Reads the tree. `pieceLength` decides which files need a `pieces root` (all but empty
    /// ones). Bounded by `maxFiles` and `maxPathDepth`.
    static func files(_ node: BencodeNode, limits: MetainfoLimits) throws(MetainfoError) -> [File] {
        var files: [File] = []
        try walk(node, path: [], field: "info.file tree", limits: limits, into: &files)
        guard !files.isEmpty else {
            throw .invalidValue("info.file tree", reason: "names no file", offset: node.range.lowerBound)
        }
        return files
    }

    private static func walk(
        _ node: BencodeNode, path: [[UInt8]], field: String, limits: MetainfoLimits, into files: inout [File]
    ) throws(MetainfoError) {
        guard let entries = node.entries else {
            throw .wrongType(field, expected: "a dictionary", offset: node.range.lowerBound)
        }
        guard path.count <= limits.maxPathDepth else {
            throw .limitExceeded(
                "'\(field)' is nested more than \(limits.maxPathDepth) deep", offset: node.range.lowerBound)
        }
        for entry in entries {
            if entry.key.isEmpty {
                guard !path.isEmpty else {
                    throw .invalidValue(field, reason: "has a file with no name", offset: entry.keyOffset)
                }
                try files.append(file(entry.value, path: path, field: field))
                guard files.count <= limits.maxFiles else {
                    throw .limitExceeded("more than \(limits.maxFiles) files", offset: entry.keyOffset)
                }
            } else {
                let name = String(decoding: entry.key, as: UTF8.self)
                try walk(
                    entry.value, path: path + [entry.key], field: "\(field).\(name)", limits: limits,
                    into: &files)
            }
        }
    }

    private static func file(_ node: BencodeNode, path: [[UInt8]], field: String) throws(MetainfoError)
        -> File
    {
        guard node.entries != nil else {
            throw .wrongType(field, expected: "a dictionary", offset: node.range.lowerBound)
        }
        guard let lengthNode = node["length"] else {
            throw .missingField("\(field).length", offset: node.range.lowerBound)
        }
        guard let length = lengthNode.integer, length >= 0 else {
            throw .invalidValue(
                "\(field).length", reason: "must be a non-negative integer",
                offset: lengthNode.range.lowerBound)
        }
        var root: [UInt8]?
        if length > 0 {
            guard let rootNode = node["pieces root"] else {
                throw .missingField("\(field).pieces root", offset: node.range.lowerBound)
            }
            guard let bytes = rootNode.bytes, bytes.count == MerkleTree.hashSize else {
                throw .invalidValue(
                    "\(field).pieces root", reason: "must be 32 bytes (a SHA-256)",
                    offset: rootNode.range.lowerBound)
            }
            root = bytes
        }
        let attributes = node["attr"]?.bytes.map(FileAttributes.init(attr:)) ?? []
        return File(
            elements: path, length: length, piecesRoot: root, attributes: attributes,
            offset: node.range.lowerBound)
    }
}
