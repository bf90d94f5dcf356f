import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import EDonkey

@Suite("The uploader's range bookkeeping (sans I/O)")
struct UploadRangesTests {
    static func file(size: Int) throws -> (ED2KSharedFile, URL) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ranges-\(UUID())")
        try Data(SeededGenerator.bytes(size, seed: 51)).write(to: url)
        return (try ED2KSharedFile(path: FilePath(url.path)), url)
    }

    @Test("a range asked again while waiting or once sent is queued once; a new session may ask again")
    func repeats() throws {
        let (file, url) = try Self.file(size: 100_000)
        defer { try? FileManager.default.removeItem(at: url) }
        var ranges = UploadRanges()
        try ranges.add([(0, 20_000), (20_000, 40_000)], of: file)
        try ranges.add([(0, 20_000), (20_000, 40_000), (40_000, 50_000)], of: file)
        #expect(ranges.waiting == 3)
        var blocks: [(UInt64, Int)] = []
        while let next = ranges.next(upTo: 10_240) { blocks.append((next.offset, next.count)) }
        #expect(blocks.map(\.0) == [0, 10_240, 20_000, 30_240, 40_000])
        #expect(blocks.map(\.1) == [10_240, 9_760, 10_240, 9_760, 10_000])
        // aMule's next request repeats ranges still on their way: nothing new to send.
        try ranges.add([(20_000, 40_000), (40_000, 50_000)], of: file)
        #expect(ranges.isEmpty)
        ranges.reset()
        try ranges.add([(20_000, 40_000)], of: file)
        #expect(ranges.waiting == 1)
    }

    @Test("past the end of the file, or more than 48 ranges waiting, is an error naming it")
    func bounds() throws {
        let (file, url) = try Self.file(size: 100_000)
        defer { try? FileManager.default.removeItem(at: url) }
        var ranges = UploadRanges()
        #expect(throws: EDonkeyError.self) { try ranges.add([(90_000, 100_001)], of: file) }
        for index in 0..<48 { try ranges.add([(UInt32(index), UInt32(index + 1))], of: file) }
        #expect(throws: EDonkeyError.tooLarge(field: "requested ranges", size: 49, limit: 48)) {
            try ranges.add([(60_000, 60_001)], of: file)
        }
    }
}
