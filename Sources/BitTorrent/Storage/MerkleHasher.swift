import Crypto
import Dispatch
import Synchronization
import SystemPackage

/// One file's BEP 52 hashes: its `pieces root` and its piece layer (empty when the file fits in
/// one piece, as BEP 52 leaves such files out of `piece layers`).
public struct FileMerkle: Sendable, Hashable {
    public var root: [UInt8]
    public var pieceLayer: [[UInt8]]
}

/// Hashes files for BEP 52 on several threads, a file per worker at a time: each file is read
/// in windows of at most 4 MiB, every 16 KiB block hashed with SHA-256 into a leaf, and the
/// tree built from the leaves (32 bytes per 16 KiB held: 2 MiB per GiB of file).
public enum MerkleHasher {
    /// Why a file could not be hashed: its index and the error (nil: shorter than expected).
    public struct Failure: Error, Sendable {
        public var fileIndex: Int
        public var error: Errno?
    }

    /// The hashes of each file (`lengths[i]` bytes at `paths[i]`; empty files have no root and
    /// give nil). `progress` is told of bytes hashed.
    public static func hash(
        paths: [FilePath], lengths: [Int64], pieceLength: Int, workers: Int,
        progress: (@Sendable (HashingProgress) -> Void)? = nil
    ) async throws(Failure) -> [FileMerkle?] {
        let job = MerkleJob(paths: paths, lengths: lengths, pieceLength: pieceLength)
        let count = max(1, min(workers, paths.count))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                DispatchQueue.concurrentPerform(iterations: count) { _ in job.work(progress: progress) }
                continuation.resume()
            }
        }
        if let failure = job.failure.withLock({ $0 }) { throw failure }
        return job.results.withLock { $0 }
    }
}

private final class MerkleJob: Sendable {
    let paths: [FilePath]
    let lengths: [Int64]
    let pieceLength: Int
    let next = Atomic<Int>(0)
    let bytesDone = Atomic<Int64>(0)
    let results: Mutex<[FileMerkle?]>
    let failure = Mutex<MerkleHasher.Failure?>(nil)
    static let window = 4 << 20

    init(paths: [FilePath], lengths: [Int64], pieceLength: Int) {
        self.paths = paths
        self.lengths = lengths
        self.pieceLength = pieceLength
        results = Mutex([FileMerkle?](repeating: nil, count: paths.count))
    }

    func work(progress: (@Sendable (HashingProgress) -> Void)?) {
        let total = lengths.reduce(0, +)
        var buffer = [UInt8](repeating: 0, count: Self.window)
        while true {
            let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard index < paths.count, failure.withLock({ $0 == nil }) else { return }
            let length = lengths[index]
            guard length > 0 else { continue }
            var reader = SequentialFileCache(paths: paths)
            defer { reader.close() }
            var leaves: [[UInt8]] = []
            leaves.reserveCapacity(
                Int((length + Int64(MerkleTree.blockSize) - 1) / Int64(MerkleTree.blockSize)))
            var position: Int64 = 0
            while position < length {
                let count = Int(min(Int64(Self.window), length - position))
                let error = buffer.withUnsafeMutableBytes { raw in
                    reader.read(
                        file: index, at: position,
                        into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]))
                }
                if let error {
                    failure.withLock {
                        if $0 == nil { $0 = MerkleHasher.Failure(fileIndex: index, error: error.errno) }
                    }
                    return
                }
                for start in stride(from: 0, to: count, by: MerkleTree.blockSize) {
                    leaves.append(MerkleTree.leaf(buffer[start..<min(start + MerkleTree.blockSize, count)]))
                }
                position += Int64(count)
                let done = bytesDone.wrappingAdd(Int64(count), ordering: .relaxed).newValue
                progress?(HashingProgress(bytesDone: done, bytesTotal: total, piecesDone: 0, pieceCount: 0))
            }
            let layer =
                length > Int64(pieceLength)
                ? MerkleTree.pieceLayer(leaves: leaves, pieceLength: pieceLength) : []
            let merkle = FileMerkle(root: MerkleTree.root(leaves: leaves), pieceLayer: layer)
            results.withLock { $0[index] = merkle }
        }
    }
}
