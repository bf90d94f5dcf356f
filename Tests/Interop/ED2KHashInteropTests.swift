import EDonkey
import Foundation
import SystemPackage
import TestSupport
import Testing

/// ed2k links from PeerStack's hasher against Debian's `ed2k_hash` on the same files. The two
/// agree except for sizes that are exact multiples of 9,728,000 bytes, where PeerStack follows
/// eMule and aMule (an extra empty part hash) and `ed2k_hash` the original eDonkey client.
@Suite("ed2k hashes against ed2k_hash")
struct ED2KHashInteropTests {
    @Test("random files of one part, several parts and a part plus one byte")
    func sameLinks() throws {
        try #require(Interop.enabled("ed2k_hash"), "ed2k-hash is not installed")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, size) in [1, 1_000, 9_727_999, 9_728_001, 25_000_000].enumerated() {
            let path = directory.appendingPathComponent("file \(index).bin")
            try Data(SeededGenerator.bytes(size, seed: UInt64(size))).write(to: path)
            let theirs = try Interop.check(Interop.onPath("ed2k_hash") ?? "/usr/bin/ed2k_hash", [path.path])
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let result = try ED2KHasher.hashFile(FilePath(path.path))
            let ours = ED2KLink.file(
                name: path.lastPathComponent, size: result.size, hash: result.hash, aich: nil, sources: [])
            #expect(ours.description.lowercased() == theirs.lowercased() + "/", "size \(size)")
        }
    }
}

extension ED2KHashInteropTests {
    @Test("aMule's own hasher (alcc) on sizes at and around exact multiples of the part size")
    func sameAsAMule() throws {
        try #require(Interop.enabled("alcc"), "amule-utils is not installed")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alcc-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for size in [9_728_000, 19_456_000, 9_728_001, 777] {
            let path = directory.appendingPathComponent("f\(size).bin")
            try Data(SeededGenerator.bytes(size, seed: UInt64(size) &+ 1)).write(to: path)
            let theirs = try Interop.check(Interop.onPath("alcc") ?? "/usr/bin/alcc", [path.path])
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let result = try ED2KHasher.hashFile(FilePath(path.path))
            let ours = ED2KLink.file(
                name: path.lastPathComponent, size: result.size, hash: result.hash, aich: nil, sources: [])
            #expect(ours.description.lowercased() == theirs.lowercased(), "size \(size)")
        }
    }
}
