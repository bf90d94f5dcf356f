import CZlib

/// Why zlib data was refused.
public enum ZlibError: Error, Hashable, Sendable, CustomStringConvertible {
    case unavailable
    case corrupt(String)
    /// Inflating would pass the caller's bound (a deflate bomb); nothing past it was kept.
    case tooLarge(size: Int, limit: Int)
    /// The deflate stream ends before its end marker.
    case truncated

    public var description: String {
        switch self {
        case .unavailable: "zlib could not start"
        case .corrupt(let message): "zlib: \(message)"
        case .tooLarge(let size, let limit): "inflated data of \(size) bytes exceeds \(limit)"
        case .truncated: "the deflate stream ends early"
        }
    }
}

/// zlib-format deflate (RFC 1950) and CRC-32 from zlib itself, for every protocol that needs
/// them: Gnutella's compressed connections, QRP patches and GGEP extensions, eDonkey's packed
/// packets (0xD4), memberlist's packet checksums.
public enum Zlib {
    public static let bestCompression: Int32 = Z_BEST_COMPRESSION

    /// `bytes` compressed in one go.
    public static func compress(_ bytes: [UInt8], level: Int32 = Z_DEFAULT_COMPRESSION) -> [UInt8] {
        Deflater(level: level).compress(bytes, finish: true)
    }

    /// `bytes` inflated whole; more than `limit` bytes of output (a deflate bomb), bad data or a
    /// stream that stops early is an error, found before the excess is kept.
    public static func decompress(_ bytes: [UInt8], limit: Int) throws(ZlibError) -> [UInt8] {
        let stream = Inflater()
        let output = try stream.inflate(bytes, limit: limit)
        guard stream.finished else { throw .truncated }
        return output
    }

    /// CRC-32 (IEEE 802.3), as Go's `crc32.ChecksumIEEE`.
    public static func crc32(_ bytes: some Collection<UInt8>) -> UInt32 {
        let array = Array(bytes)
        return array.withUnsafeBufferPointer { buffer in
            UInt32(CZlib.crc32(0, buffer.baseAddress, uInt(buffer.count)))
        }
    }
}

/// A deflate stream over many writes (a compressed connection): each `compress` returns what
/// zlib produced, flushed to a byte boundary so the peer can inflate all of it at once.
public final class Deflater {
    private var stream = z_stream()
    private var ready = false

    public init(level: Int32 = Z_DEFAULT_COMPRESSION) {
        ready =
            deflateInit_(&stream, level, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    deinit { if ready { deflateEnd(&stream) } }

    /// Compresses `input`; `finish` ends the stream (one-shot use), otherwise a sync flush.
    public func compress(_ input: [UInt8], finish: Bool = false) -> [UInt8] {
        guard ready else { return [] }
        var input = input
        var output: [UInt8] = []
        var chunk = [UInt8](
            repeating: 0, count: max(1024, Int(deflateBound(&stream, UInt(input.count))) + 64))
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { target -> Int in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    _ = deflate(&stream, finish ? Z_FINISH : Z_SYNC_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
                output += chunk[0..<produced]
            } while stream.avail_out == 0
            stream.next_in = nil
        }
        return output
    }
}

/// An inflate stream over many reads (a compressed connection), bounded per call.
public final class Inflater {
    private var stream = z_stream()
    private var ready = false
    /// The peer's stream ended (Z_STREAM_END).
    public private(set) var finished = false

    public init() {
        ready = inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    deinit { if ready { inflateEnd(&stream) } }

    /// Inflates `input`, all of it; more than `limit` bytes out is an error (nothing past the
    /// limit is kept), as is data zlib rejects.
    public func inflate(_ input: [UInt8], limit: Int) throws(ZlibError) -> [UInt8] {
        guard ready else { throw .unavailable }
        var input = input
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var failure: ZlibError?
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            while !finished {
                var status: Int32 = Z_OK
                let produced = chunk.withUnsafeMutableBufferPointer { target -> Int in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
                if status == Z_STREAM_END { finished = true }
                if status != Z_OK, status != Z_STREAM_END, status != Z_BUF_ERROR {
                    let message =
                        stream.msg.map { String(cString: $0) } ?? zError(status).map { String(cString: $0) }
                    failure = .corrupt(message ?? "zlib error \(status)")
                    break
                }
                guard output.count + produced <= limit else {
                    failure = .tooLarge(size: output.count + produced, limit: limit)
                    break
                }
                output += chunk[0..<produced]
                if produced == 0 || (stream.avail_in == 0 && stream.avail_out > 0) { break }
            }
            stream.next_in = nil
            stream.avail_in = 0
        }
        if let failure { throw failure }
        return output
    }
}
