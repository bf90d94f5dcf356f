import Bencode

/// Why a `.torrent` file (or its info dictionary) is not acceptable. Each case names the field
/// and the byte offset of the offending value where one exists.
public enum MetainfoError: Error, Hashable, Sendable {
    /// The bytes are not valid bencode.
    case bencode(BencodeError)
    /// A required field is absent. `field` is dotted from the top, e.g. `info.piece length`.
    case missingField(String, offset: Int)
    /// A field has the wrong bencode type.
    case wrongType(String, expected: String, offset: Int)
    /// A field has an unusable value.
    case invalidValue(String, reason: String, offset: Int)
    /// A file path that could escape the download directory or name nothing (`..`, `.`, an
    /// empty component, an absolute path, `/` or NUL inside a component).
    case unsafePath([String], offset: Int)
    /// The `pieces` string does not hold one 20-byte hash per piece of the total length.
    case pieceCountMismatch(expected: Int, found: Int, offset: Int)
    /// The input exceeds a configured bound.
    case limitExceeded(String, offset: Int)
    /// The file could not be read at all.
    case unreadableFile(String)

    /// The byte offset of the problem in the input.
    public var offset: Int {
        switch self {
        case .bencode(let error): return error.offset
        case .unreadableFile: return 0
        case .missingField(_, let offset), .wrongType(_, _, let offset), .invalidValue(_, _, let offset),
            .unsafePath(_, let offset), .pieceCountMismatch(_, _, let offset), .limitExceeded(_, let offset):
            return offset
        }
    }

    /// What is wrong, without the offset.
    public var reason: String {
        switch self {
        case .bencode(let error): return "not valid bencode: \(error.reason)"
        case .missingField(let field, _): return "missing field '\(field)'"
        case .wrongType(let field, let expected, _): return "field '\(field)' must be \(expected)"
        case .invalidValue(let field, let reason, _): return "field '\(field)' \(reason)"
        case .unsafePath(let components, _):
            let shown = components.map { $0.replacingNULs() }.joined(separator: "/")
            return "unsafe file path '\(shown)' (absolute, empty, '.', '..', or containing '/' or NUL)"
        case .pieceCountMismatch(let expected, let found, _):
            return "'info.pieces' holds \(found) piece hashes but the total length needs \(expected)"
        case .limitExceeded(let what, _): return what
        case .unreadableFile(let reason): return reason
        }
    }
}

extension MetainfoError: CustomStringConvertible {
    /// `"<reason> (at byte N)"`, or just the reason when the file could not be read.
    public var description: String {
        if case .unreadableFile = self { return reason }
        return "\(reason) (at byte \(offset))"
    }
}

extension String {
    fileprivate func replacingNULs() -> String {
        String(unicodeScalars.map { $0 == "\0" ? "\u{2400}" : Character($0) })
    }
}
