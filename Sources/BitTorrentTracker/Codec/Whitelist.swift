import BitTorrent

/// A whitelist file: one info-hash a line as 40 hexadecimal digits (opentracker's format);
/// blank lines and lines starting with `#` are skipped, and text after the hash is ignored.
public enum Whitelist {
    /// Why a whitelist could not be read.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var line: Int
        public var text: String
        public var description: String { "line \(line): '\(text)' is not a 40-digit hexadecimal info-hash" }
    }

    /// Most lines read (10 million hashes is about 400 MB of text).
    public static let maxEntries = 10_000_000

    public static func parse(_ text: String) throws(ParseError) -> Set<InfoHashKey> {
        var result = Set<InfoHashKey>()
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard result.count < maxEntries else { break }
            let word = trimmed.prefix { !$0.isWhitespace }
            guard word.utf8.count == 40, let hash = InfoHash(word) else {
                throw ParseError(line: number, text: String(trimmed.prefix(60)))
            }
            result.insert(InfoHashKey(hash))
        }
        return result
    }
}
