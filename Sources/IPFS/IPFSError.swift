import Multiformats

/// Why a block, a DAG, a CAR file or a repository could not be read or written. Every case names
/// what was wrong and, for bytes, where.
public enum IPFSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bytes that are not a valid (strict) dag-pb node, with the byte offset where decoding stopped.
    case badDagPB(String, offset: Int)
    /// A dag-pb node whose Data is not valid UnixFS.
    case badUnixFS(String, offset: Int)
    /// Bytes that are not the CBOR this library reads (CAR headers).
    case badCBOR(String, offset: Int)
    /// A CAR file that breaks the format, at a byte offset of the file.
    case badCAR(String, offset: Int64)
    /// A block whose bytes do not hash to its CID.
    case hashMismatch(CID)
    /// A block the store does not have.
    case missingBlock(CID)
    /// A block larger than the limit (the Bitswap limit is 2 MiB).
    case blockTooLarge(CID?, size: Int)
    /// A path segment that names nothing in the directory.
    case noSuchLink(String, in: CID)
    /// A DAG node that is not what the operation needs (a directory for `cat`, a file for `ls`).
    case wrongKind(CID, String)
    /// A codec or hash function this library does not handle.
    case unsupported(String)
    /// Options or input files the importer refuses.
    case badInput(String)
    /// A DAG deeper than the limit (a cycle cannot occur with sound hashes, but depth is bounded).
    case tooDeep(CID)
    /// A block stored but not read back whole (the store's error).
    case unreadable(CID, String)
    /// An export passed one of its ``ExportLimits`` (which, and the limit).
    case limitExceeded(String)
    /// `get` would have replaced a path that already exists (two entries of one name, or a
    /// path the DAG does not own).
    case wouldReplace(String)
    /// A block no peer had (or gave in time), with how many peers were asked.
    case unavailable(CID, peers: Int)
    /// A symlink whose target is absolute or leads outside the output tree.
    case unsafeSymlink(String, target: String)

    public var description: String {
        switch self {
        case .badDagPB(let why, let offset): return "invalid dag-pb at byte \(offset): \(why)"
        case .badUnixFS(let why, let offset): return "invalid UnixFS data at byte \(offset): \(why)"
        case .badCBOR(let why, let offset): return "invalid CBOR at byte \(offset): \(why)"
        case .badCAR(let why, let offset): return "invalid CAR at byte \(offset): \(why)"
        case .hashMismatch(let cid): return "block \(cid) does not match its hash"
        case .missingBlock(let cid): return "block \(cid) is not in the store"
        case .blockTooLarge(let cid, let size):
            return "block \(cid.map { "\($0) " } ?? "")of \(size) bytes is larger than the 2 MiB limit"
        case .noSuchLink(let name, let cid): return "no link named '\(name)' in \(cid)"
        case .wrongKind(let cid, let why): return "\(cid): \(why)"
        case .unsupported(let what): return "unsupported: \(what)"
        case .badInput(let why): return why
        case .tooDeep(let cid): return "DAG under \(cid) is deeper than the limit"
        case .unreadable(let cid, let why):
            return
                "block \(cid) was stored but does not read back (\(why)): the repository's disk or copy is damaged"
        case .limitExceeded(let why): return why
        case .unavailable(let cid, let peers):
            return peers == 0
                ? "block \(cid) is not here and there is no peer to ask (name one with --peer)"
                : "none of the \(peers) peers asked has block \(cid)"
        case .wouldReplace(let path): return "\(path) exists already: an export never replaces a path"
        case .unsafeSymlink(let path, let target):
            return "\(path): refusing a symlink to '\(target)', which leads outside the output tree"
        }
    }
}
