/// Turns the path elements a torrent names into safe ones, as libtorrent does, so that a torrent
/// libtorrent opens opens here too and its files land at the same paths (libtorrent 2.0's
/// `torrent_info`, measured; `../shared/INTEROP.md` lists the cases). Nothing it returns can
/// leave the download directory: no element is empty, `.` or `..`, or holds `/`, `\` or NUL.
enum PathSanitizer {
    /// The longest element, in bytes, before a short extension is kept and the rest cut.
    static let maxElementBytes = 240

    /// The safe form of one element; nil when it is dropped (`.`, `..`, or nothing left).
    static func element(_ bytes: [UInt8]) -> String? {
        if bytes == [UInt8(ascii: ".")] { return nil }
        if bytes.isEmpty { return "_" }
        var out: [UInt8] = []
        out.reserveCapacity(min(bytes.count, maxElementBytes + 10))
        var dots = 0
        var index = 0
        var extended = false
        while index < bytes.count {
            let (scalar, length) = decode(bytes, at: index)
            defer { index += length }
            if let scalar {
                if filtered(scalar) { continue }
                guard scalar >= 32 else {
                    out.append(UInt8(ascii: "_"))
                    continue
                }
                out.append(contentsOf: bytes[index..<index + length])
                if scalar == UInt32(UInt8(ascii: ".")) { dots += 1 }
            } else {
                out.append(UInt8(ascii: "_"))  // an invalid UTF-8 sequence
            }
            if out.count >= maxElementBytes && !extended {
                // Cut here, but keep an extension found in the last ten bytes.
                guard
                    let dot = (max(bytes.count - 9, index + 1)..<bytes.count).reversed()
                        .first(where: { bytes[$0] == UInt8(ascii: ".") })
                else { break }
                extended = true
                index = dot - length
            }
        }
        if out.count == dots && dots <= 2 { return nil }  // ".." (or "." once filtered)
        return String(decoding: out, as: UTF8.self)
    }

    /// The safe elements of a path; a path whose elements all vanish becomes `_`.
    static func path(_ elements: [[UInt8]]) -> [String] {
        let kept = elements.compactMap(element)
        return kept.isEmpty ? ["_"] : kept
    }

    /// Removed from names: `/`, `\`, NUL, and the Unicode controls that reverse the direction
    /// of text (a name could otherwise show `exe.avi` for `…\u{202E}iva.exe`).
    private static func filtered(_ scalar: UInt32) -> Bool {
        switch scalar {
        case 0, 0x2F, 0x5C, 0x202A...0x202E, 0x200E, 0x200F: return true
        default: return false
        }
    }

    /// The scalar at `index` and the bytes its sequence takes; nil for an invalid sequence (a
    /// bad lead byte takes one byte, a bad or short sequence the length its lead announces or
    /// what is left; overlong forms, surrogates and values past U+10FFFF are invalid).
    private static func decode(_ bytes: [UInt8], at index: Int) -> (UInt32?, Int) {
        let lead = bytes[index]
        let length: Int
        switch lead {
        case 0..<0x80: return (UInt32(lead), 1)
        case 0xC0..<0xE0: length = 2
        case 0xE0..<0xF0: length = 3
        case 0xF0..<0xF8: length = 4
        case 0xF8..<0xFC: return (nil, min(5, bytes.count - index))
        default: return (nil, 1)
        }
        guard index + length <= bytes.count else { return (nil, bytes.count - index) }
        var value = UInt32(lead) & (0xFF >> (length + 1))
        for offset in 1..<length {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { return (nil, length) }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard value >= minimum, value <= 0x10FFFF, !(0xD800...0xDFFF).contains(value) else {
            return (nil, length)
        }
        return (value, length)
    }

    /// Renames files whose path another file or a directory already takes, as libtorrent does:
    /// `name.N.ext` with the first N from 1 that is free. Paths are the elements below the
    /// torrent's directory; `skip` ones (padding) are left as they are. Unlike libtorrent, names
    /// that differ only in case do not clash: they are distinct files here (libtorrent renames
    /// the later one, so a torrent of a directory holding `B.bin` and `b.bin` would no longer
    /// match its own files).
    static func deduplicated(_ paths: [[String]], skip: [Bool]) -> [[String]] {
        func key(_ path: [String]) -> String { path.joined(separator: "/") }
        var directories = Set<String>()
        for (path, skipped) in zip(paths, skip) where !skipped {
            for depth in 1..<max(path.count, 1) { directories.insert(key(Array(path[..<depth]))) }
        }
        var taken = Set<String>()
        var result = paths
        for index in paths.indices where !skip[index] {
            var path = paths[index]
            if taken.contains(key(path)) || directories.contains(key(path)), let last = path.last {
                let (base, ext) = split(last)
                var counter = 1
                repeat {
                    path[path.count - 1] = "\(base).\(counter)\(ext)"
                    counter += 1
                } while taken.contains(key(path)) || directories.contains(key(path))
            }
            taken.insert(key(path))
            result[index] = path
        }
        return result
    }

    /// `x.tar.gz` → (`x.tar`, `.gz`); `.hidden` → (``, `.hidden`); `a` → (`a`, ``).
    private static func split(_ name: String) -> (String, String) {
        guard let dot = name.lastIndex(of: ".") else { return (name, "") }
        return (String(name[..<dot]), String(name[dot...]))
    }
}
