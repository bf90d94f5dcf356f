/// How a torrent's concatenated data maps onto its files (BEP 3): pieces run across file
/// boundaries, padding files (BEP 47) are zeros that exist only in the data stream.
public struct FileLayout: Hashable, Sendable {
    /// A run of bytes inside one file.
    public struct Segment: Hashable, Sendable {
        public var fileIndex: Int
        /// Offset inside the file.
        public var fileOffset: Int64
        public var length: Int
    }

    public let files: [FileEntry]
    public let pieceLength: Int
    public let totalLength: Int64

    public init(files: [FileEntry], pieceLength: Int) {
        self.files = files
        self.pieceLength = pieceLength
        self.totalLength = files.last.map { $0.offset + $0.length } ?? 0
    }

    public init(info: InfoDictionary) {
        self.init(files: info.files, pieceLength: info.pieceLength)
    }

    public var pieceCount: Int {
        Int((totalLength + Int64(pieceLength) - 1) / Int64(pieceLength))
    }

    /// Bytes of the torrent data that piece `index` covers.
    public func pieceRange(_ index: Int) -> Range<Int64> {
        let start = Int64(index) * Int64(pieceLength)
        return start..<min(start + Int64(pieceLength), totalLength)
    }

    /// The file segments, in order, that make up `range` of the torrent data. Empty files
    /// contribute nothing.
    public func segments(in range: Range<Int64>) -> [Segment] {
        guard !range.isEmpty, !files.isEmpty else { return [] }
        var result: [Segment] = []
        var index = firstFile(containing: range.lowerBound)
        while index < files.count {
            let file = files[index]
            if file.offset >= range.upperBound { break }
            let start = max(file.offset, range.lowerBound)
            let end = min(file.offset + file.length, range.upperBound)
            if end > start {
                result.append(
                    Segment(fileIndex: index, fileOffset: start - file.offset, length: Int(end - start)))
            }
            index += 1
        }
        return result
    }

    /// The pieces that hold any byte of file `index` (none for an empty file).
    public func pieces(overlappingFile index: Int) -> Range<Int> {
        let file = files[index]
        guard file.length > 0 else { return 0..<0 }
        let first = Int(file.offset / Int64(pieceLength))
        let last = Int((file.offset + file.length - 1) / Int64(pieceLength))
        return first..<last + 1
    }

    /// Index of the first file whose range holds `offset`, by binary search.
    private func firstFile(containing offset: Int64) -> Int {
        var low = 0
        var high = files.count
        while low < high {
            let mid = (low + high) / 2
            if files[mid].offset + files[mid].length <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
