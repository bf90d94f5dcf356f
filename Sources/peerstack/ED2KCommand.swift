import ArgumentParser
import EDonkey
import Foundation
import SystemPackage

struct ED2KCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ed2k",
        abstract: "eDonkey/eMule: ed2k hashes and links.",
        subcommands: [ED2KHash.self]
    )
}

struct ED2KHash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Print each file's ed2k link (MD4 over 9,728,000-byte parts, as eMule and aMule hash).",
        discussion: """
            The link has the file's name, size and ed2k hash: ed2k://|file|NAME|SIZE|HASH|/. \
            A file whose size is an exact multiple of the part size gets the extra empty part \
            hash eMule and aMule give it. Large files show a progress bar on a terminal.
            """
    )

    @Argument(help: "Files to hash.")
    var files: [String]

    @Flag(help: "Also print each part's hash.")
    var parts = false

    func run() throws {
        var failed = false
        for file in files {
            let path = FilePath(file)
            let bar = ProgressBar(title: path.lastComponent?.string ?? file)
            do {
                var size: UInt64 = 0
                if let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                    let bytes = attributes[.size] as? NSNumber
                {
                    size = bytes.uint64Value
                }
                let result = try ED2KHasher.hashFile(path) { done in
                    if size > 64 << 20 { bar.update(done: Int64(done), total: Int64(size)) }
                }
                bar.finish()
                guard result.size > 0 else {
                    Terminal.error("\(file): empty files have no ed2k link")
                    failed = true
                    continue
                }
                let link = ED2KLink.file(
                    name: path.lastComponent?.string ?? file, size: result.size, hash: result.hash, aich: nil,
                    sources: [])
                print(link)
                if parts {
                    for (index, part) in result.parts.enumerated() {
                        print("  part \(index): \(part.map { String(format: "%02X", $0) }.joined())")
                    }
                }
            } catch {
                bar.finish()
                Terminal.error("\(file): \(error)")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
