import Crypto
import Dispatch
import Multiformats
import Synchronization
import SystemPackage

/// A child of a file node: what a parent links to and adds up.
public struct FileChild: Sendable, Hashable {
    public let cid: CID
    /// Bytes of file content under this child.
    public let fileSize: UInt64
    /// The link's Tsize: the bytes of every block of this child's DAG.
    public let tsize: UInt64
}

/// Where file content comes from: fills a buffer and returns fewer bytes only at the end.
public protocol ChunkReader {
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Reads a file descriptor from its current offset.
public struct FileChunkReader: ChunkReader {
    public let descriptor: FileDescriptor
    public init(_ descriptor: FileDescriptor) { self.descriptor = descriptor }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var count = 0
        while count < buffer.count {
            let read = try descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[count...]))
            if read == 0 { break }
            count += read
        }
        return count
    }
}

/// Reads bytes held in memory.
public struct BytesChunkReader: ChunkReader {
    let bytes: [UInt8]
    var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset)
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + count]))
        }
        offset += count
        return count
    }
}

/// The leaves of one file in order, made a batch at a time: a batch of chunks is read, then
/// hashed (and stored) on all threads, then handed out one by one to the layout, which pulls as
/// go-unixfs's `DagBuilderHelper` does (`done` is true once no data is left).
struct LeafSource<Reader: ChunkReader> {
    var reader: Reader
    let chunkSize: Int
    let raw: Bool
    let kind: UnixFSData.Kind
    let cidVersion: Int
    let sink: (any BlockSink)?
    let threads: Int
    let onBytes: (Int) -> Void
    private var buffer: [UInt8]
    private var queue: [FileChild] = []
    private var next = 0
    private var ended = false

    init(
        reader: Reader, options: ImportOptions, kind: UnixFSData.Kind, sink: (any BlockSink)?,
        expectedSize: UInt64? = nil, onBytes: @escaping (Int) -> Void
    ) {
        self.reader = reader
        self.chunkSize = options.chunkSize
        self.raw = options.usesRawLeaves
        self.kind = kind
        self.cidVersion = options.cidVersion
        self.sink = sink
        self.threads = max(1, options.threads)
        self.onBytes = onBytes
        // About 8 MiB a batch, at least 4 chunks per thread; no more than the file needs (many
        // small files must not each cost a large buffer).
        var chunks = max(threads * 4, (8 << 20) / options.chunkSize)
        if let expectedSize {
            chunks = min(chunks, Int(min(expectedSize, 1 << 40) / UInt64(options.chunkSize)) + 1)
        }
        let capacity = chunks * options.chunkSize
        self.buffer = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
    }

    mutating func isDone() throws -> Bool {
        if next < queue.count { return false }
        if ended { return true }
        try refill()
        return next >= queue.count
    }

    mutating func nextLeaf() throws -> FileChild {
        guard try !isDone() else { throw IPFSError.badInput("no more data") }
        defer { next += 1 }
        return queue[next]
    }

    private mutating func refill() throws {
        let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
        if count < buffer.count { ended = true }
        queue = try hashChunks(count)
        next = 0
        onBytes(count)
    }

    private func hashChunks(_ count: Int) throws -> [FileChild] {
        let chunks = (count + chunkSize - 1) / chunkSize
        guard chunks > 0 else { return [] }
        var results = [FileChild?](repeating: nil, count: chunks)
        let failure = Mutex<(any Error)?>(nil)
        let workers = min(threads, chunks)
        let chunkSize = chunkSize
        buffer.withUnsafeBytes { source in
            results.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let source = source
                nonisolated(unsafe) let out = out
                let make = makeLeaf
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var index = worker
                    while index < chunks {
                        let start = index * chunkSize
                        let chunk = UnsafeRawBufferPointer(
                            rebasing: source[start..<min(count, start + chunkSize)])
                        do {
                            out[index] = try make(chunk)
                        } catch {
                            failure.withLock { $0 = $0 ?? error }
                            return
                        }
                        index += workers
                    }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results.compactMap { $0 }
    }

    /// Hashes one chunk as a leaf (raw, or a UnixFS node of `kind` without the copy that
    /// encoding would need) and stores it when there is a sink.
    private var makeLeaf: @Sendable (UnsafeRawBufferPointer) throws -> FileChild {
        let raw = raw
        let kind = kind
        let cidVersion = cidVersion
        let sink = sink
        return { chunk in
            let size = UInt64(chunk.count)
            if raw {
                let digest = SHA256.hash(data: chunk)
                let cid = CID(
                    v1: .raw, Multihash(code: Multihash.Function.sha256.rawValue, digest: Array(digest)))
                try sink?.put(cid, parts: [chunk])
                return FileChild(cid: cid, fileSize: size, tsize: size)
            }
            let (header, trailer) = UnixFSLeaf.frame(kind: kind, size: chunk.count)
            var hasher = SHA256()
            hasher.update(data: header)
            hasher.update(data: chunk)
            hasher.update(data: trailer)
            let multihash = Multihash(
                code: Multihash.Function.sha256.rawValue, digest: Array(hasher.finalize()))
            let cid = DagBuilder.dagPBCID(multihash, version: cidVersion)
            if let sink {
                try header.withUnsafeBytes { header in
                    try trailer.withUnsafeBytes { trailer in
                        try sink.put(cid, parts: [header, chunk, trailer])
                    }
                }
            }
            return FileChild(
                cid: cid, fileSize: size, tsize: UInt64(header.count + chunk.count + trailer.count))
        }
    }
}

/// The bytes around a chunk in a UnixFS leaf node: `PBNode{Data: Data{Type, Data: chunk,
/// filesize}}`, so the chunk can be hashed in place.
enum UnixFSLeaf {
    static func frame(kind: UnixFSData.Kind, size: Int) -> (header: [UInt8], trailer: [UInt8]) {
        let n = UInt64(size)
        let unixfsLength = 2 + 1 + Protobuf.varintSize(n) + size + 1 + Protobuf.varintSize(n)
        var header: [UInt8] = [0x0a]
        Protobuf.appendVarint(UInt64(unixfsLength), to: &header)
        header += [0x08, UInt8(kind.rawValue), 0x12]
        Protobuf.appendVarint(n, to: &header)
        var trailer: [UInt8] = [0x18]
        Protobuf.appendVarint(n, to: &trailer)
        return (header, trailer)
    }
}
