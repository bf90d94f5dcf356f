/// A tag (eDonkey's typed name/value pairs, as eMule's `CTag`): a name that is either a
/// one-byte special ID (FT_FILENAME 0x01, FT_FILESIZE 0x02, CT_VERSION 0x11, …) or a string,
/// and a typed value. Old-style tags write the name with a u16 length; new-style (eMule) ones
/// set bit 7 of the type and write a one-byte ID, and short strings as STR1…STR16.
public struct Tag: Sendable, Equatable {
    public enum Name: Sendable, Equatable, Hashable {
        case id(UInt8)
        case string(String)
    }

    public enum Value: Sendable, Equatable {
        case string(String)
        case uint(UInt64)
        case float(Float)
        case hash([UInt8])
        case blob([UInt8])
        case bool(Bool)
    }

    public var name: Name
    public var value: Value

    public init(_ name: Name, _ value: Value) {
        self.name = name
        self.value = value
    }

    // Special names (eMule's opcodes.h).
    public static let fileName: UInt8 = 0x01
    public static let fileSize: UInt8 = 0x02
    public static let fileType: UInt8 = 0x03
    public static let fileFormat: UInt8 = 0x04
    public static let sources: UInt8 = 0x15
    public static let completeSources: UInt8 = 0x30
    public static let fileSizeHigh: UInt8 = 0x3A
    public static let port: UInt8 = 0x0F
    public static let version: UInt8 = 0x11
    public static let serverFlags: UInt8 = 0x20
    public static let emuleVersion: UInt8 = 0xFB

    /// Most tags in one list, and the longest string or blob, read before allocating.
    public static let maxTags = 256
    public static let maxValueBytes = 64 * 1024

    enum TypeCode: UInt8 {
        case hash = 0x01
        case string = 0x02
        case uint32 = 0x03
        case float32 = 0x04
        case bool = 0x05
        case boolArray = 0x06
        case blob = 0x07
        case uint16 = 0x08
        case uint8 = 0x09
        case bsob = 0x0A
        case uint64 = 0x0B
    }

    public static func parse(_ reader: inout EDonkeyReader) throws(EDonkeyError) -> Tag {
        let at = reader.offset
        var type = try reader.u8("tag type")
        let name: Name
        if type & 0x80 != 0 {
            type &= 0x7F
            name = .id(try reader.u8("tag name ID"))
        } else {
            let length = Int(try reader.u16("tag name length"))
            guard length > 0, length <= 256 else {
                throw .invalid(field: "tag name length", offset: at + 1, reason: "\(length)")
            }
            let bytes = try reader.take(length, "tag name")
            name = length == 1 ? .id(bytes[0]) : .string(String(decoding: bytes, as: UTF8.self))
        }
        let value: Value
        switch type {
        case 0x11...0x20:
            value = .string(String(decoding: try reader.take(Int(type - 0x10), "tag string"), as: UTF8.self))
        case TypeCode.hash.rawValue: value = .hash(try reader.hash("tag hash"))
        case TypeCode.string.rawValue:
            let length = Int(try reader.u16("tag string length"))
            value = .string(String(decoding: try reader.take(length, "tag string"), as: UTF8.self))
        case TypeCode.uint32.rawValue: value = .uint(UInt64(try reader.u32("tag uint32")))
        case TypeCode.uint16.rawValue: value = .uint(UInt64(try reader.u16("tag uint16")))
        case TypeCode.uint8.rawValue: value = .uint(UInt64(try reader.u8("tag uint8")))
        case TypeCode.uint64.rawValue: value = .uint(try reader.u64("tag uint64"))
        case TypeCode.float32.rawValue: value = .float(Float(bitPattern: try reader.u32("tag float")))
        case TypeCode.bool.rawValue: value = .bool(try reader.u8("tag bool") != 0)
        case TypeCode.blob.rawValue:
            let length = Int(try reader.u32("tag blob length"))
            guard length <= maxValueBytes else {
                throw .tooLarge(field: "tag blob", size: length, limit: maxValueBytes)
            }
            value = .blob(try reader.take(length, "tag blob"))
        case TypeCode.bsob.rawValue:
            value = .blob(try reader.take(Int(try reader.u8("tag bsob length")), "tag bsob"))
        case TypeCode.boolArray.rawValue:
            let bits = Int(try reader.u16("tag bool array length"))
            value = .blob(try reader.take((bits + 7) / 8, "tag bool array"))
        default:
            throw .invalid(field: "tag type", offset: at, reason: "0x\(String(type, radix: 16))")
        }
        return Tag(name, value)
    }

    /// A u32 count, then that many tags (at most `maxTags`, checked before reading).
    public static func parseList(_ reader: inout EDonkeyReader, countBytes: Int = 4) throws(EDonkeyError)
        -> [Tag]
    {
        let count = countBytes == 1 ? Int(try reader.u8("tag count")) : Int(try reader.u32("tag count"))
        guard count <= maxTags else { throw .tooLarge(field: "tag list", size: count, limit: maxTags) }
        var tags: [Tag] = []
        for _ in 0..<count { tags.append(try parse(&reader)) }
        return tags
    }

    /// The tag's bytes, new-style (eMule) or old-style (eDonkey servers and old clients).
    public func encode(into writer: inout EDonkeyWriter, newStyle: Bool = true) {
        var type: UInt8
        var body = EDonkeyWriter()
        switch value {
        case .string(let text):
            let utf8 = Array(text.utf8.prefix(Int(UInt16.max)))
            if newStyle, (1...16).contains(utf8.count), case .id = name {
                type = 0x10 + UInt8(utf8.count)
                body.raw(utf8)
            } else {
                type = TypeCode.string.rawValue
                body.u16(UInt16(utf8.count))
                body.raw(utf8)
            }
        case .uint(let number):
            if number > UInt64(UInt32.max) {
                type = TypeCode.uint64.rawValue
                body.u64(number)
            } else if newStyle, number <= UInt64(UInt8.max) {
                type = TypeCode.uint8.rawValue
                body.u8(UInt8(number))
            } else if newStyle, number <= UInt64(UInt16.max) {
                type = TypeCode.uint16.rawValue
                body.u16(UInt16(number))
            } else {
                type = TypeCode.uint32.rawValue
                body.u32(UInt32(number))
            }
        case .float(let number):
            type = TypeCode.float32.rawValue
            body.u32(number.bitPattern)
        case .hash(let digest):
            type = TypeCode.hash.rawValue
            body.raw(Array((digest + [UInt8](repeating: 0, count: 16)).prefix(16)))
        case .blob(let bytes):
            type = TypeCode.blob.rawValue
            body.u32(UInt32(bytes.count))
            body.raw(bytes)
        case .bool(let flag):
            type = TypeCode.bool.rawValue
            body.u8(flag ? 1 : 0)
        }
        switch name {
        case .id(let id) where newStyle:
            writer.u8(type | 0x80)
            writer.u8(id)
        case .id(let id):
            writer.u8(type)
            writer.u16(1)
            writer.u8(id)
        case .string(let text):
            writer.u8(type)
            writer.string(text)
        }
        writer.raw(body.bytes)
    }

    public static func encodeList(_ tags: [Tag], into writer: inout EDonkeyWriter, newStyle: Bool = true) {
        writer.u32(UInt32(tags.count))
        for tag in tags { tag.encode(into: &writer, newStyle: newStyle) }
    }
}

extension Array where Element == Tag {
    public subscript(id id: UInt8) -> Tag.Value? { first { $0.name == .id(id) }?.value }

    public func string(_ id: UInt8) -> String? {
        if case .string(let text) = self[id: id] { return text }
        return nil
    }

    public func uint(_ id: UInt8) -> UInt64? {
        if case .uint(let number) = self[id: id] { return number }
        return nil
    }
}
