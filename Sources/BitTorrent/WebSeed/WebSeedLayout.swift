/// Where a torrent's bytes are on a web seed (BEP 19, GetRight style): an `url-list` entry names
/// the file itself (single-file torrent, URL not ending in `/`), or a folder holding the torrent
/// as it is laid out on disk (`folder/name/path…` for a multi-file torrent, `folder/name` for
/// a single file). A run of blocks becomes one HTTP range request per file it touches; padding
/// files (BEP 47) are zeros and never fetched.
public struct WebSeedLayout: Sendable {
    /// One HTTP range request: bytes `fileRange` of a file, landing at `offset` of the run.
    public struct Fetch: Sendable, Hashable {
        public var url: String
        public var fileIndex: Int
        public var fileRange: Range<Int64>
        public var offset: Int
        /// The whole file: a server may answer `200` with all of it instead of `206`.
        public var isWholeFile: Bool
    }

    /// The `url-list` entry.
    public let base: String
    public let info: InfoDictionary
    public let layout: FileLayout
    private let urls: [String]

    public init(base: String, info: InfoDictionary) {
        self.base = base
        self.info = info
        layout = FileLayout(info: info)
        urls = info.files.map { file in
            let components = info.relativePath(of: file).map(Self.escape)
            if !info.isMultiFile && !base.hasSuffix("/") { return base }
            let folder = base.hasSuffix("/") ? base : base + "/"
            return folder + components.joined(separator: "/")
        }
    }

    /// The URL of file `index`.
    public func url(ofFile index: Int) -> String { urls[index] }

    /// The range requests that fetch `range` of the torrent's data, in order.
    public func fetches(for range: Range<Int64>) -> [Fetch] {
        var offset = 0
        var result: [Fetch] = []
        for segment in layout.segments(in: range) {
            defer { offset += segment.length }
            let file = info.files[segment.fileIndex]
            if file.isPadding { continue }
            let fileRange = segment.fileOffset..<segment.fileOffset + Int64(segment.length)
            result.append(
                Fetch(
                    url: urls[segment.fileIndex], fileIndex: segment.fileIndex, fileRange: fileRange,
                    offset: offset, isWholeFile: fileRange == 0..<file.length))
        }
        return result
    }

    /// Block requests grouped into runs of consecutive torrent bytes (at most `maxBytes` each),
    /// in order: each run is fetched with as few range requests as its files allow.
    public static func runs(_ requests: [BlockRequest], pieceLength: Int, maxBytes: Int) -> [[BlockRequest]] {
        func start(_ request: BlockRequest) -> Int64 {
            Int64(request.piece) * Int64(pieceLength) + Int64(request.offset)
        }
        var runs: [[BlockRequest]] = []
        var bytes = 0
        for request in requests.sorted(by: { start($0) < start($1) }) {
            if let last = runs.last?.last, start(last) + Int64(last.length) == start(request),
                bytes + request.length <= maxBytes
            {
                runs[runs.count - 1].append(request)
                bytes += request.length
            } else {
                runs.append([request])
                bytes = request.length
            }
        }
        return runs
    }

    /// Percent-encodes a path component (RFC 3986: all but the unreserved characters).
    static func escape(_ component: String) -> String { percentEncoded(Array(component.utf8)) }
}

/// A `Content-Range: bytes a-b/total` header's range, or nil when it is malformed.
func parseContentRange(_ value: String) -> (range: Range<Int64>, total: Int64?)? {
    let trimmed = value.trimmingPrefix("bytes").drop { $0 == " " }
    let parts = trimmed.split(separator: "/", maxSplits: 1)
    guard parts.count == 2 else { return nil }
    let bounds = parts[0].split(separator: "-", maxSplits: 1)
    guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]), first >= 0,
        last >= first
    else { return nil }
    return (first..<last + 1, Int64(parts[1]))
}
