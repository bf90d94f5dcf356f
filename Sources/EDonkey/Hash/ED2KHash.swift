import CNettle
import SystemPackage

/// MD4 (RFC 1320) from Nettle: the digest eDonkey's hashes are made of.
public struct MD4: Sendable {
    private var context = md4_ctx()

    public init() { nettle_md4_init(&context) }

    public mutating func update(_ bytes: some Collection<UInt8>) {
        if let done = bytes.withContiguousStorageIfAvailable({ raw in
            nettle_md4_update(&context, raw.count, raw.baseAddress)
        }) {
            return done
        }
        let copy = Array(bytes)
        copy.withUnsafeBufferPointer { nettle_md4_update(&context, $0.count, $0.baseAddress) }
    }

    public mutating func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 16)
        digest.withUnsafeMutableBufferPointer { nettle_md4_digest(&context, 16, $0.baseAddress) }
        return digest
    }

    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var md4 = MD4()
        md4.update(bytes)
        return md4.finalize()
    }
}

/// The ed2k file hash: MD4 over each 9,728,000-byte part, then, for files of more than one
/// part, MD4 over the part hashes. A file whose size is an exact multiple of the part size has
/// one more, empty, part (eMule's and aMule's rule, which `ed2k_hash` follows too), so a file of
/// exactly 9,728,000 bytes has two part hashes.
public struct ED2KHasher: Sendable {
    public static let partSize = 9_728_000

    private var part = MD4()
    private var inPart = 0
    public private(set) var size: UInt64 = 0
    public private(set) var partHashes: [[UInt8]] = []

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        var index = 0
        while index < bytes.count {
            let take = min(bytes.count - index, Self.partSize - inPart)
            part.update(bytes[index..<index + take])
            inPart += take
            index += take
            size += UInt64(take)
            if inPart == Self.partSize {
                partHashes.append(part.finalize())
                part = MD4()
                inPart = 0
            }
        }
    }

    /// The file hash and the part hashes (the hashset clients exchange; one entry for a file
    /// of one part).
    public mutating func finalize() -> (hash: [UInt8], parts: [[UInt8]]) {
        // The last, possibly empty, part.
        partHashes.append(part.finalize())
        part = MD4()
        inPart = 0
        if partHashes.count == 1 { return (partHashes[0], partHashes) }
        var top = MD4()
        for hash in partHashes { top.update(hash) }
        return (top.finalize(), partHashes)
    }

    /// Hashes a file, reading it 1 MiB at a time: its ed2k hash, part hashes and AICH root in
    /// one pass; `progress` gets the bytes done.
    public static func hashFile(_ path: FilePath, progress: (UInt64) -> Void = { _ in }) throws -> (
        size: UInt64, hash: [UInt8], parts: [[UInt8]], aich: AICHTree
    ) {
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        var hasher = ED2KHasher()
        var aich = AICHHasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            hasher.update(Array(buffer[0..<count]))
            aich.update(buffer[0..<count])
            progress(hasher.size)
        }
        let size = hasher.size
        let (hash, parts) = hasher.finalize()
        return (size, hash, parts, aich.finalizeTree())
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes from hex (either case); nil for anything else.
    init?(hex text: some StringProtocol) {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        self = out
    }
}
