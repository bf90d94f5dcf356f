/// The UnixFS protobuf carried in a dag-pb node's Data (UnixFS spec, `Data` message): what the
/// node is (file, directory, raw chunk, symlink, HAMT shard), its bytes and sizes.
public struct UnixFSData: Hashable, Sendable {
    public enum Kind: UInt64, Sendable {
        case raw = 0
        case directory = 1
        case file = 2
        case metadata = 3
        case symlink = 4
        case hamtShard = 5
    }

    /// UnixFS 1.5 modification time.
    public struct Time: Hashable, Sendable {
        public var seconds: Int64
        public var nanoseconds: UInt32?

        public init(seconds: Int64, nanoseconds: UInt32? = nil) {
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }
    }

    public var kind: Kind
    public var data: [UInt8]?
    public var fileSize: UInt64?
    public var blockSizes: [UInt64]
    public var hashType: UInt64?
    public var fanout: UInt64?
    public var mode: UInt32?
    public var mtime: Time?

    public init(
        kind: Kind, data: [UInt8]? = nil, fileSize: UInt64? = nil, blockSizes: [UInt64] = [],
        hashType: UInt64? = nil, fanout: UInt64? = nil
    ) {
        self.kind = kind
        self.data = data
        self.fileSize = fileSize
        self.blockSizes = blockSizes
        self.hashType = hashType
        self.fanout = fanout
    }

    /// Fields in field-number order, as Go's protobuf writes them (so hashes match Kubo's).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        Protobuf.appendUInt(1, kind.rawValue, to: &out)
        if let data { Protobuf.appendBytes(2, data, to: &out) }
        if let fileSize { Protobuf.appendUInt(3, fileSize, to: &out) }
        for size in blockSizes { Protobuf.appendUInt(4, size, to: &out) }
        if let hashType { Protobuf.appendUInt(5, hashType, to: &out) }
        if let fanout { Protobuf.appendUInt(6, fanout, to: &out) }
        if let mode { Protobuf.appendUInt(7, UInt64(mode), to: &out) }
        if let mtime {
            var time: [UInt8] = []
            Protobuf.appendUInt(1, UInt64(bitPattern: mtime.seconds), to: &time)
            if let nanos = mtime.nanoseconds {
                Protobuf.appendTag(2, 5, to: &time)
                withUnsafeBytes(of: nanos.littleEndian) { time.append(contentsOf: $0) }
            }
            Protobuf.appendBytes(8, time, to: &out)
        }
        return out
    }

    /// Most block sizes listed in one node (a node is at most 2 MiB, each entry at least 2 bytes).
    public static let maxBlockSizes = 1 << 20

    /// Decodes UnixFS data; fields may come in any order (protobuf), wire types are checked,
    /// unknown fields skipped, the required Type must be present and known.
    public init(decoding bytes: [UInt8]) throws(IPFSError) {
        var reader = Protobuf.Reader(bytes) { .badUnixFS($0, offset: $1) }
        var kind: Kind?
        var result = UnixFSData(kind: .raw)
        while !reader.atEnd {
            let (field, wireType, at) = try reader.tag()
            switch (field, wireType) {
            case (1, Protobuf.varint):
                let value = try reader.varint("Type")
                guard let known = Kind(rawValue: value) else {
                    throw .badUnixFS("unknown Type \(value)", offset: at)
                }
                kind = known
            case (2, Protobuf.lengthDelimited): result.data = Array(bytes[try reader.lengthDelimited("Data")])
            case (3, Protobuf.varint): result.fileSize = try reader.varint("filesize")
            case (4, Protobuf.varint):
                guard result.blockSizes.count < Self.maxBlockSizes else {
                    throw .badUnixFS("too many blocksizes", offset: at)
                }
                result.blockSizes.append(try reader.varint("blocksizes"))
            case (4, Protobuf.lengthDelimited):
                // Packed form, which other writers may use.
                let range = try reader.lengthDelimited("blocksizes")
                var packed = Protobuf.Reader(bytes, range: range) { .badUnixFS($0, offset: $1) }
                while !packed.atEnd {
                    guard result.blockSizes.count < Self.maxBlockSizes else {
                        throw .badUnixFS("too many blocksizes", offset: at)
                    }
                    result.blockSizes.append(try packed.varint("blocksizes"))
                }
            case (5, Protobuf.varint): result.hashType = try reader.varint("hashType")
            case (6, Protobuf.varint): result.fanout = try reader.varint("fanout")
            case (7, Protobuf.varint):
                result.mode = UInt32(truncatingIfNeeded: try reader.varint("mode"))
            case (8, Protobuf.lengthDelimited):
                let range = try reader.lengthDelimited("mtime")
                var time = Protobuf.Reader(bytes, range: range) { .badUnixFS($0, offset: $1) }
                var mtime = Time(seconds: 0)
                while !time.atEnd {
                    let (subfield, subtype, subAt) = try time.tag()
                    switch (subfield, subtype) {
                    case (1, Protobuf.varint):
                        mtime.seconds = Int64(bitPattern: try time.varint("mtime seconds"))
                    case (2, 5):
                        guard range.upperBound - time.offset >= 4 else {
                            throw .badUnixFS("mtime nanoseconds run past the end", offset: subAt)
                        }
                        let b = bytes[time.offset..<time.offset + 4].reversed().reduce(UInt32(0)) {
                            $0 << 8 | UInt32($1)
                        }
                        mtime.nanoseconds = b
                        time.offset += 4
                    default:
                        throw .badUnixFS("mtime field \(subfield) with wire type \(subtype)", offset: subAt)
                    }
                }
                result.mtime = mtime
            default:
                try Self.skip(wireType, field: field, at: at, reader: &reader)
            }
        }
        guard let kind else { throw .badUnixFS("no Type field", offset: 0) }
        result.kind = kind
        self = result
    }

    private static func skip(
        _ wireType: Int, field: Int, at: Int, reader: inout Protobuf.Reader
    ) throws(IPFSError) {
        switch wireType {
        case Protobuf.varint: _ = try reader.varint("field \(field)")
        case Protobuf.lengthDelimited: _ = try reader.lengthDelimited("field \(field)")
        case 1, 5:
            let width = wireType == 1 ? 8 : 4
            guard reader.end - reader.offset >= width else {
                throw .badUnixFS("field \(field) runs past the end", offset: at)
            }
            reader.offset += width
        default: throw .badUnixFS("field \(field) has wire type \(wireType)", offset: at)
        }
    }
}
