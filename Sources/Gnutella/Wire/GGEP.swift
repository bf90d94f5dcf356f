/// A GGEP block (Gnutella Generic Extension Protocol 0.51): the magic byte 0xC3, then
/// extensions, each a flags byte (last, COBS-encoded, deflated, 1–15 bytes of ID length), the
/// ID, a 1–3 byte length (6 bits a byte, `10xxxxxx` while more follow, `01xxxxxx` for the last)
/// and the data. Extensions here hold their data decoded: COBS undone, deflate inflated.
public struct GGEPBlock: Sendable, Equatable {
    public struct Extension: Sendable, Equatable {
        /// 1–15 bytes of ASCII, no NUL (e.g. "H" for a hash, "DU" for daily uptime).
        public var id: String
        public var data: [UInt8]
        /// How it is written: deflated first, then COBS-encoded (so the data has no NUL).
        public var compress: Bool
        public var cobs: Bool

        public init(id: String, data: [UInt8], compress: Bool = false, cobs: Bool = false) {
            self.id = id
            self.data = data
            self.compress = compress
            self.cobs = cobs
        }
    }

    public var extensions: [Extension]

    public init(_ extensions: [Extension]) { self.extensions = extensions }

    public static let magic: UInt8 = 0xC3
    /// Most bytes an extension's data may hold once inflated.
    public static let maxInflated = 64 * 1024
    /// Most extensions in one block.
    public static let maxExtensions = 64

    public subscript(id: String) -> [UInt8]? { extensions.first { $0.id == id }?.data }

    /// Parses a block starting at `reader`'s position (the magic byte) and leaves the reader
    /// after its last extension.
    static func parse(_ reader: inout PayloadReader) throws(GnutellaError) -> GGEPBlock {
        let start = reader.offset
        guard try reader.byte("GGEP magic") == magic else {
            throw .invalid(field: "GGEP magic", offset: start, reason: "not 0xC3")
        }
        var extensions: [Extension] = []
        while true {
            let flagsAt = reader.offset
            let flags = try reader.byte("GGEP extension flags")
            guard flags & 0x10 == 0 else {
                throw .invalid(field: "GGEP extension flags", offset: flagsAt, reason: "reserved bit set")
            }
            let idLength = Int(flags & 0x0F)
            guard idLength > 0 else {
                throw .invalid(field: "GGEP extension ID length", offset: flagsAt, reason: "zero")
            }
            let idAt = reader.offset
            let idBytes = try reader.take(idLength, "GGEP extension ID")
            guard !idBytes.contains(0), let id = String(validating: idBytes, as: UTF8.self) else {
                throw .invalid(field: "GGEP extension ID", offset: idAt, reason: "NUL or not text")
            }
            var length = 0
            var lengthBytes = 0
            while true {
                let lengthAt = reader.offset
                let byte = try reader.byte("GGEP data length")
                lengthBytes += 1
                length = length << 6 | Int(byte & 0x3F)
                switch byte & 0xC0 {
                case 0x40: break
                case 0x80 where lengthBytes < 3: continue
                default:
                    throw .invalid(
                        field: "GGEP data length", offset: lengthAt, reason: "bad length byte \(byte)")
                }
                break
            }
            var data = try reader.take(length, "GGEP data of \(id)")
            let cobs = flags & 0x40 != 0
            let compress = flags & 0x20 != 0
            if cobs { data = try COBS.decode(data, at: reader.offset - length) }
            if compress { data = try Deflate.decompress(data, limit: maxInflated) }
            extensions.append(Extension(id: id, data: data, compress: compress, cobs: cobs))
            guard extensions.count <= maxExtensions else {
                throw .tooLarge(field: "GGEP extensions", size: extensions.count, limit: maxExtensions)
            }
            if flags & 0x80 != 0 { break }
        }
        return GGEPBlock(extensions)
    }

    /// Parses `bytes` as one whole block.
    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        self = try Self.parse(&reader)
        guard reader.isAtEnd else {
            throw .invalid(
                field: "GGEP block", offset: reader.offset, reason: "bytes after the last extension")
        }
    }

    /// The block's bytes (an empty block writes nothing: GGEP has no empty form).
    public func encoded() -> [UInt8] {
        guard !extensions.isEmpty else { return [] }
        var out: [UInt8] = [Self.magic]
        for (index, ext) in extensions.enumerated() {
            let id = Array(ext.id.utf8.prefix(15))
            var data = ext.data
            if ext.compress { data = Deflate.compress(data) }
            if ext.cobs { data = COBS.encode(data) }
            var flags = UInt8(id.count)
            if index == extensions.count - 1 { flags |= 0x80 }
            if ext.cobs { flags |= 0x40 }
            if ext.compress { flags |= 0x20 }
            out.append(flags)
            out += id
            let length = min(data.count, (1 << 18) - 1)
            if length >= 1 << 12 { out.append(0x80 | UInt8(length >> 12 & 0x3F)) }
            if length >= 1 << 6 { out.append(0x80 | UInt8(length >> 6 & 0x3F)) }
            out.append(0x40 | UInt8(length & 0x3F))
            out += data[0..<length]
        }
        return out
    }
}

/// Consistent Overhead Byte Stuffing (Cheshire and Baker), which GGEP uses to keep NULs out of
/// extension data.
public enum COBS {
    public static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0]
        var codeAt = 0
        var code: UInt8 = 1
        for (index, byte) in bytes.enumerated() {
            if byte == 0 {
                out[codeAt] = code
                codeAt = out.count
                out.append(0)
                code = 1
            } else {
                out.append(byte)
                code += 1
                if code == 0xFF {
                    out[codeAt] = code
                    // A full run that ends the data needs no code byte after it.
                    if index == bytes.count - 1 { return out }
                    codeAt = out.count
                    out.append(0)
                    code = 1
                }
            }
        }
        out[codeAt] = code
        return out
    }

    /// Undoes `encode`; `at` is where the data began, for errors.
    public static func decode(_ bytes: [UInt8], at start: Int = 0) throws(GnutellaError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let code = Int(bytes[index])
            guard code != 0 else {
                throw .invalid(field: "COBS data", offset: start + index, reason: "a NUL code byte")
            }
            guard index + code <= bytes.count else {
                throw .truncated(field: "COBS run", offset: start + index)
            }
            let run = bytes[(index + 1)..<min(index + code, bytes.count)]
            guard !run.contains(0) else {
                throw .invalid(field: "COBS data", offset: start + index, reason: "a NUL inside a run")
            }
            out += run
            index += code
            if code < 0xFF, index < bytes.count { out.append(0) }
        }
        return out
    }
}
