import Foundation
import PeerNet
import SystemPackage
import Testing

@Suite("SmallFile: bounded reads, crash-safe writes")
struct SmallFileTests {
    /// A fresh directory for one test, removed at the end.
    static func withDirectory(_ body: (FilePath) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peernet-smallfile-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(FilePath(path))
    }

    static func exists(_ path: FilePath) -> Bool { FileManager.default.fileExists(atPath: path.string) }

    @Test("a write replaces the whole file; a read returns it; an empty file reads as empty")
    func roundTrip() throws {
        try Self.withDirectory { directory in
            let file = directory.appending("state")
            try SmallFile.writeAtomically(Array("first version, longer".utf8), to: file)
            try SmallFile.writeAtomically(Array("second".utf8), to: file)
            #expect(try SmallFile.read(file, limit: 100) == Array("second".utf8))
            try SmallFile.writeAtomically([], to: file)
            #expect(try SmallFile.read(file, limit: 0) == [])
            #expect(!Self.exists(directory.appending("state.partial")))
        }
    }

    @Test("a read refuses a file over its limit before allocating, naming the size and the limit")
    func limit() throws {
        try Self.withDirectory { directory in
            let file = directory.appending("big")
            try SmallFile.writeAtomically([UInt8](repeating: 7, count: 4097), to: file)
            #expect(try SmallFile.read(file, limit: 4097).count == 4097)
            do {
                _ = try SmallFile.read(file, limit: 4096)
                Issue.record("a 4,097-byte file was read under a 4,096-byte limit")
            } catch let error as SmallFile.TooLarge {
                #expect(error.size == 4097 && error.limit == 4096)
                #expect(error.description.contains("4097") && error.description.contains(file.string))
            }
            #expect(throws: Errno.noSuchFileOrDirectory) {
                try SmallFile.read(directory.appending("missing"), limit: 10)
            }
        }
    }

    @Test("while a write is under way and after it fails, the name shows the old content")
    func failedWriteKeepsOld() throws {
        try Self.withDirectory { directory in
            let file = directory.appending("resume")
            let old = Array("verified pieces: 1,2,3".utf8)
            try SmallFile.writeAtomically(old, to: file)
            struct Interrupted: Error {}
            #expect(throws: Interrupted.self) {
                try SmallFile.writeAtomically(to: file) { descriptor in
                    _ = try descriptor.writeAll(Array("verified pieces: 1,2,3,4,5".utf8.prefix(10)))
                    // Half written: a reader (or a crash now) sees the old file only.
                    #expect(try SmallFile.read(file, limit: 100) == old)
                    #expect(Self.exists(directory.appending("resume.partial")))
                    throw Interrupted()
                }
            }
            #expect(try SmallFile.read(file, limit: 100) == old)
            #expect(!Self.exists(directory.appending("resume.partial")))
        }
    }

    @Test("a leftover temporary file from a crash does not disturb the next write")
    func leftoverPartial() throws {
        try Self.withDirectory { directory in
            let file = directory.appending("table")
            try SmallFile.writeAtomically(Array("old".utf8), to: file)
            // What a crash between creating the temporary file and the rename leaves behind.
            try SmallFile.writeAtomically(to: directory.appending("table.partial.seed"), durable: false) {
                _ = try $0.writeAll(Array("garbage garbage garbage".utf8))
            }
            try FileManager.default.moveItem(
                atPath: directory.appending("table.partial.seed").string,
                toPath: directory.appending("table.partial").string)
            #expect(try SmallFile.read(file, limit: 100) == Array("old".utf8))
            try SmallFile.writeAtomically(Array("new".utf8), to: file)
            #expect(try SmallFile.read(file, limit: 100) == Array("new".utf8))
            #expect(!Self.exists(directory.appending("table.partial")))
        }
    }

    @Test("a write into a directory that does not exist fails and creates nothing")
    func missingDirectory() throws {
        try Self.withDirectory { directory in
            let file = directory.appending("no/such/dir/file")
            #expect(throws: Errno.noSuchFileOrDirectory) { try SmallFile.writeAtomically([1], to: file) }
            #expect(!Self.exists(file))
        }
    }
}
