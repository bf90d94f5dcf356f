/// How ``UnixFSImporter`` builds a DAG; the defaults are Kubo's `ipfs add`.
public struct ImportOptions: Sendable, Hashable {
    public enum Layout: String, Sendable, Hashable {
        /// go-unixfs `balanced`: full subtrees of `maxLinks` children, left to right.
        case balanced
        /// go-unixfs `trickle`: leaves first, then 4 subtrees of each growing depth.
        case trickle
    }

    /// 0 (base58 `Qm…`, dag-pb leaves) or 1 (base32 `bafy…`, raw leaves unless told otherwise).
    public var cidVersion = 0
    /// Raw leaves (`--raw-leaves`); `nil` follows the CID version as Kubo does.
    public var rawLeaves: Bool?
    /// Bytes per chunk (`--chunker size-N`); Kubo refuses more than 1 MiB.
    public var chunkSize = 262_144
    public var layout = Layout.balanced
    /// Links per node (go-unixfs `DefaultLinksPerBlock`).
    public var maxLinks = 174
    /// Whether names starting with "." are added (`--hidden`).
    public var includeHidden = false
    /// A directory whose estimated size (names plus CID bytes of its links) reaches this many
    /// bytes becomes a HAMT shard (Kubo's `Internal.UnixFSShardingSizeThreshold`, 256 KiB);
    /// 0 never shards.
    public var shardingThreshold = 262_144
    /// Threads hashing (and storing) leaves.
    public var threads = 2

    /// Largest chunk Kubo's chunker accepts.
    public static let maxChunkSize = 1 << 20

    public init() {}

    public var usesRawLeaves: Bool { rawLeaves ?? (cidVersion == 1) }

    /// Parses Kubo's chunker syntax; only the fixed-size chunker (`size-N`) is supported.
    public static func chunkSize(fromChunker text: String) throws(IPFSError) -> Int {
        guard text.hasPrefix("size-"), let size = Int(text.dropFirst(5)) else {
            throw .badInput("unsupported chunker '\(text)' (only size-N is supported)")
        }
        guard size > 0, size <= maxChunkSize else {
            throw .badInput("chunker size \(size) is outside 1…\(maxChunkSize) bytes")
        }
        return size
    }

    func validate() throws(IPFSError) {
        guard cidVersion == 0 || cidVersion == 1 else {
            throw .badInput("CID version \(cidVersion) (want 0 or 1)")
        }
        guard chunkSize > 0, chunkSize <= Self.maxChunkSize else {
            throw .badInput("chunk size \(chunkSize) is outside 1…\(Self.maxChunkSize) bytes")
        }
        guard maxLinks >= 2 else { throw .badInput("max links \(maxLinks) (want at least 2)") }
    }
}
