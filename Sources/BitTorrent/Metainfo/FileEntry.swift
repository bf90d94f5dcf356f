/// BEP 47 file attributes, from the `attr` string of a file entry.
public struct FileAttributes: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `p`: a padding file; its bytes are zeros, never stored on disk.
    public static let padding = FileAttributes(rawValue: 1 << 0)
    /// `x`: executable.
    public static let executable = FileAttributes(rawValue: 1 << 1)
    /// `h`: hidden.
    public static let hidden = FileAttributes(rawValue: 1 << 2)
    /// `l`: a symbolic link; see ``FileEntry/symlinkTarget``.
    public static let symlink = FileAttributes(rawValue: 1 << 3)

    /// Reads an `attr` string; unknown letters are ignored, as BEP 47 asks.
    public init(attr: [UInt8]) {
        var result: FileAttributes = []
        for letter in attr {
            switch letter {
            case UInt8(ascii: "p"): result.insert(.padding)
            case UInt8(ascii: "x"): result.insert(.executable)
            case UInt8(ascii: "h"): result.insert(.hidden)
            case UInt8(ascii: "l"): result.insert(.symlink)
            default: break
            }
        }
        self = result
    }

    /// The `attr` string for these attributes, letters in BEP 47 order.
    public var attr: String {
        var text = ""
        if contains(.padding) { text += "p" }
        if contains(.symlink) { text += "l" }
        if contains(.executable) { text += "x" }
        if contains(.hidden) { text += "h" }
        return text
    }
}

/// One file of a torrent, where it lies in the torrent's concatenated data.
public struct FileEntry: Hashable, Sendable {
    /// Path components below the torrent's directory; for a single-file torrent, `[name]`.
    public var path: [String]
    /// Length in bytes.
    public var length: Int64
    /// Offset of the file's first byte in the torrent's concatenated data.
    public var offset: Int64
    public var attributes: FileAttributes
    /// The link target of a BEP 47 symlink (`symlink path`), as path components.
    public var symlinkTarget: [String]?
    /// BEP 52: the root of the file's merkle tree (nil in a v1 torrent and for empty files).
    public var piecesRoot: [UInt8]?

    public init(
        path: [String], length: Int64, offset: Int64, attributes: FileAttributes = [],
        symlinkTarget: [String]? = nil
    ) {
        self.path = path
        self.length = length
        self.offset = offset
        self.attributes = attributes
        self.symlinkTarget = symlinkTarget
    }

    /// A BEP 47 padding file: zeros that align the next file to a piece boundary.
    public var isPadding: Bool { attributes.contains(.padding) }

    /// The torrent data bytes this file covers.
    public var range: Range<Int64> { offset..<offset + length }
}
