import Multiformats
import SystemPackage

/// CAR (content-addressable archive) files: CARv1 (a DAG-CBOR header `{roots, version: 1}`,
/// then varint-length-prefixed sections of CID + block bytes) and CARv2 (an 11-byte pragma, a
/// 40-byte header, a CARv1 payload and an optional index, which this reader does not need).
public enum CAR {
    /// The 11 bytes that open a CARv2 file (the CBOR of `{version: 2}` behind its varint length).
    public static let v2Pragma: [UInt8] = [0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02]
    /// Largest header accepted.
    public static let maxHeaderSize = 1 << 20

    /// The CARv1 header bytes (with their varint length) for `roots`.
    public static func header(roots: [CID]) -> [UInt8] {
        let body = CBORValue.map([("roots", .array(roots.map { .cid($0) })), ("version", .unsigned(1))])
            .encoded()
        return Varint.encode(UInt64(body.count)) + body
    }

    /// A section's bytes: varint(length of CID + block), CID, block.
    public static func section(_ cid: CID, _ block: [UInt8]) -> [UInt8] {
        let id = cid.bytes
        return Varint.encode(UInt64(id.count + block.count)) + id + block
    }

    /// Parses a CARv1 header body (the CBOR after the varint).
    static func parseHeader(_ body: [UInt8], at fileOffset: Int64) throws(IPFSError) -> (
        version: UInt64, roots: [CID]
    ) {
        var offset = 0
        let value: CBORValue
        do {
            value = try CBORValue.decode(body, at: &offset)
        } catch {
            throw .badCAR("header: \(error)", offset: fileOffset)
        }
        guard offset == body.count else { throw .badCAR("bytes after the header's CBOR", offset: fileOffset) }
        guard case .unsigned(let version) = value["version"] else {
            throw .badCAR("header has no version", offset: fileOffset)
        }
        if version == 2 { return (2, []) }
        guard version == 1 else { throw .badCAR("version \(version) (want 1 or 2)", offset: fileOffset) }
        guard case .array(let list) = value["roots"] else {
            throw .badCAR("header has no roots array", offset: fileOffset)
        }
        var roots: [CID] = []
        for item in list {
            guard case .cid(let cid) = item else { throw .badCAR("a root is not a CID", offset: fileOffset) }
            roots.append(cid)
        }
        return (1, roots)
    }
}

/// Writes a CARv1 file: the header, then each section as it is appended.
public final class CARWriter {
    private let descriptor: FileDescriptor
    private var buffer: [UInt8] = []
    public private(set) var blocks = 0

    public init(descriptor: FileDescriptor, roots: [CID]) throws {
        self.descriptor = descriptor
        buffer = CAR.header(roots: roots)
    }

    public func append(_ cid: CID, _ block: [UInt8]) throws {
        buffer += CAR.section(cid, block)
        blocks += 1
        if buffer.count >= 4 << 20 { try flush() }
    }

    public func flush() throws {
        _ = try descriptor.writeAll(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Reads CARv1 and CARv2 files from a descriptor, a section at a time, verifying each block
/// against its CID before handing it on. Errors name the byte offset in the file and, for a block
/// that does not match, its CID.
public struct CARReader {
    public let version: UInt64
    public let roots: [CID]
    private var input: BufferedInput
    /// Where the CARv1 payload ends (CARv2's data size), if known.
    private let end: Int64?

    /// Reads a CAR file from `descriptor`'s current offset.
    public init(descriptor: FileDescriptor) throws {
        try self.init(reading: FileChunkReader(descriptor))
    }

    /// Reads a CAR held in memory.
    public init(bytes: [UInt8]) throws {
        try self.init(reading: BytesChunkReader(bytes))
    }

    public init(reading reader: some ChunkReader) throws {
        var input = BufferedInput(reader)
        let first = try input.peek(CAR.v2Pragma.count)
        if first == CAR.v2Pragma {
            _ = try input.take(CAR.v2Pragma.count)
            let header = try input.take(40)
            guard header.count == 40 else { throw IPFSError.badCAR("CARv2 header is cut short", offset: 11) }
            func u64(_ at: Int) -> UInt64 {
                header[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
            }
            let dataOffset = u64(16)
            let dataSize = u64(24)
            guard dataOffset >= 51, dataOffset < UInt64(Int64.max / 2), dataSize < UInt64(Int64.max / 2)
            else {
                throw IPFSError.badCAR(
                    "CARv2 data offset \(dataOffset) or size \(dataSize) is impossible", offset: 27)
            }
            try input.skip(to: Int64(dataOffset))
            self.end = Int64(dataOffset + dataSize)
            self.input = input
            let (version, roots) = try Self.readV1Header(&self.input)
            guard version == 1 else {
                throw IPFSError.badCAR("CARv2 payload is not CARv1", offset: Int64(dataOffset))
            }
            self.version = 2
            self.roots = roots
        } else {
            self.input = input
            self.end = nil
            let (version, roots) = try Self.readV1Header(&self.input)
            guard version == 1 else {
                throw IPFSError.badCAR("a version 2 header without the CARv2 pragma", offset: 0)
            }
            self.version = 1
            self.roots = roots
        }
    }

    private static func readV1Header(_ input: inout BufferedInput) throws -> (UInt64, [CID]) {
        let at = input.position
        guard let length = try input.varint() else { throw IPFSError.badCAR("empty file", offset: at) }
        guard length > 0, length <= UInt64(CAR.maxHeaderSize) else {
            throw IPFSError.badCAR("header length \(length)", offset: at)
        }
        let body = try input.take(Int(length))
        guard body.count == Int(length) else { throw IPFSError.badCAR("header is cut short", offset: at) }
        return try CAR.parseHeader(body, at: at)
    }

    /// The next verified block, or nil at the end.
    public mutating func next() throws -> (cid: CID, block: [UInt8])? {
        let at = input.position
        if let end, at >= end { return nil }
        guard let length = try input.varint() else { return nil }
        guard length > 0 else { throw IPFSError.badCAR("empty section", offset: at) }
        guard length <= UInt64(DagPBNode.maxBlockSize + 128) else {
            throw IPFSError.badCAR("section of \(length) bytes is larger than a block may be", offset: at)
        }
        let body = try input.take(Int(length))
        guard body.count == Int(length) else { throw IPFSError.badCAR("section is cut short", offset: at) }
        if let end, input.position > end {
            throw IPFSError.badCAR("section runs past the CARv2 data size", offset: at)
        }
        var offset = 0
        let cid: CID
        do {
            if body.count >= 2, body[0] == 0x12, body[1] == 0x20 {
                let multihash = try Multihash.read(body, at: &offset)
                cid = try CID(v0: multihash)
            } else {
                cid = try CID.read(body, at: &offset)
            }
        } catch {
            throw IPFSError.badCAR("section's CID: \(error)", offset: at)
        }
        let block = Array(body[offset...])
        if cid.multihash.code == Multihash.Function.identity.rawValue {
            guard cid.multihash.digest == block else { throw IPFSError.hashMismatch(cid) }
        } else {
            guard let function = cid.multihash.function else {
                throw IPFSError.unsupported(
                    "hash function 0x\(String(cid.multihash.code, radix: 16)) of \(cid)")
            }
            guard Multihash.hash(block, with: function) == cid.multihash else {
                throw IPFSError.hashMismatch(cid)
            }
        }
        return (cid, block)
    }
}

/// Sequential reads through a 1 MiB buffer, with the file position for error messages.
struct BufferedInput {
    var reader: any ChunkReader
    private var buffer: [UInt8] = []
    private var start = 0
    private(set) var position: Int64 = 0
    private var eof = false

    init(_ reader: any ChunkReader) { self.reader = reader }

    private mutating func fill(_ count: Int) throws {
        while buffer.count - start < count && !eof {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: max(1 << 20, count))
            let read = try chunk.withUnsafeMutableBytes { try reader.read(into: $0) }
            if read == 0 { eof = true }
            buffer += chunk.prefix(read)
        }
    }

    mutating func peek(_ count: Int) throws -> [UInt8] {
        try fill(count)
        return Array(buffer[start..<min(buffer.count, start + count)])
    }

    mutating func take(_ count: Int) throws -> [UInt8] {
        let bytes = try peek(count)
        start += bytes.count
        position += Int64(bytes.count)
        return bytes
    }

    mutating func skip(to offset: Int64) throws {
        while position < offset {
            let step = Int(min(offset - position, 1 << 20))
            let bytes = try take(step)
            guard bytes.count == step else {
                throw IPFSError.badCAR("ends before offset \(offset)", offset: position)
            }
        }
    }

    /// A varint, or nil at a clean end of file.
    mutating func varint() throws -> UInt64? {
        let at = position
        let head = try peek(Varint.maxBytes)
        if head.isEmpty { return nil }
        var offset = 0
        do {
            let value = try Varint.decode(head, at: &offset)
            _ = try take(offset)
            return value
        } catch {
            throw IPFSError.badCAR("\(error)", offset: at)
        }
    }
}

extension CARReader {
    /// Puts every remaining block into `store` (each already checked against its CID by
    /// ``next()``) and reads each back, checked again: a block the store does not give back
    /// whole — a failing disk, or a damaged copy of the same size already there, which a put
    /// keeps — stops the import with the block named. Returns the count.
    public mutating func importBlocks(into store: some BlockSink & BlockSource) throws -> Int {
        var count = 0
        while let (cid, block) = try next() {
            try store.put(cid, block)
            do {
                _ = try store.verifiedBlock(cid)
            } catch {
                throw IPFSError.unreadable(cid, "\(error)")
            }
            count += 1
        }
        return count
    }
}
