import Foundation
import IPFS
import Multiformats
import SystemPackage
import Testing

/// A directory tree written for a test and removed after it.
struct TemporaryTree {
    let root: URL

    init(_ files: [String: String], directories: [String] = []) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-ipfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for directory in directories {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        for (path, content) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content.utf8).write(to: url)
        }
    }

    func path(_ relative: String) -> FilePath { FilePath(root.appendingPathComponent(relative).path) }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

func importOptions(_ configure: (inout ImportOptions) -> Void = { _ in }) -> ImportOptions {
    var options = ImportOptions()
    configure(&options)
    return options
}

/// CIDs published by Kubo's own tests (test/sharness/t0040-add-and-cat.sh) and the issue.
@Suite struct ImporterKnownAnswers {
    func cid(_ text: String, _ configure: (inout ImportOptions) -> Void = { _ in }) throws -> String {
        try UnixFSImporter(options: importOptions(configure), sink: nil).addFile(bytes: Array(text.utf8)).cid
            .description
    }

    @Test func files() throws {
        #expect(try cid("") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
        #expect(try cid("hello world\n") == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        #expect(try cid("Hello Worlds!\n") == "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH")
        #expect(try cid("Helloo Worlds!\n") == "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ")
        #expect(try cid("IPFS\n") == "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w")
        #expect(try cid("Hello Venus!\n") == "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4")
        #expect(try cid("Hello Jupiter!\n") == "QmUnvPcBctVTAcJpigv6KMqDvmDewksPWrNVoy1E1WP5fh")
        #expect(try cid("Hello Neptune!\nHello Pluton!") == "QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3")
        // `--cid-base=base32` shows the v0 CID as v1.
        #expect(
            try CID(cid("base32 test\n")).v1.description
                == "bafybeibyosqxljd2eptb4ebbtvk7pb4aoxzqa6ttdsflty6rsslz5y6i34")
    }

    @Test func options() throws {
        #expect(
            try cid("Hello Worlds!\n") { $0.layout = .trickle }
                == "QmUkUQgxXeggyaD5Ckv8ZqfW8wHBX6cYyeiyqvVZYzq5Bi")
        #expect(
            try cid("Hello Worlds!\n") { $0.chunkSize = 64 }
                == "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH")
        #expect(
            try cid("hello world\n") { $0.cidVersion = 1 }
                == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        #expect(
            try cid("") { $0.rawLeaves = true }
                == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    }

    @Test func chunkerSyntax() throws {
        #expect(try ImportOptions.chunkSize(fromChunker: "size-64") == 64)
        #expect(throws: IPFSError.self) { try ImportOptions.chunkSize(fromChunker: "size-0") }
        #expect(throws: IPFSError.self) { try ImportOptions.chunkSize(fromChunker: "size-1048577") }
        #expect(throws: IPFSError.self) { try ImportOptions.chunkSize(fromChunker: "rabin") }
    }

    func add(_ tree: TemporaryTree, _ path: String, _ configure: (inout ImportOptions) -> Void = { _ in })
        throws
        -> [(String, String)]
    {
        try UnixFSImporter(options: importOptions(configure), sink: nil).add(tree.path(path), recursive: true)
            .map { ($0.path, $0.cid.description) }
    }

    @Test(
        "planets/ with Kubo's flag combinations",
        arguments: [
            (
                0, nil as Bool?,
                [
                    "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN",
                    "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4",
                    "QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY",
                ]
            ),
            (
                0, true,
                [
                    "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4",
                    "bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca",
                    "QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT",
                ]
            ),
            (
                1, nil,
                [
                    "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4",
                    "bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca",
                    "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi",
                ]
            ),
            (
                1, false,
                [
                    "bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4",
                    "bafybeicvkvhs2fr75ynebtdjqpgm4g2fc63abqbmysupwpmcjl4gx7mzrm",
                    "bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y",
                ]
            ),
        ])
    func planets(version: Int, rawLeaves: Bool?, expected: [String]) throws {
        let tree = try TemporaryTree([
            "planets/mars.txt": "Hello Mars!\n", "planets/venus.txt": "Hello Venus!\n",
        ])
        defer { tree.remove() }
        let entries = try add(tree, "planets") {
            $0.cidVersion = version
            $0.rawLeaves = rawLeaves
        }
        #expect(entries.map(\.0) == ["planets/mars.txt", "planets/venus.txt", "planets"])
        #expect(entries.map(\.1) == expected)
    }

    @Test("moons/: nested directories, printed in Kubo's order")
    func moons() throws {
        let tree = try TemporaryTree([
            "moons/jupiter/europa.txt": "Hello Europa!\n", "moons/saturn/titan.txt": "Hello Titan!\n",
            "moons/mercury.txt": "hey youre no moon!\n",
        ])
        defer { tree.remove() }
        let entries = try add(tree, "moons")
        #expect(
            entries.map(\.0) == [
                "moons/jupiter/europa.txt", "moons/mercury.txt", "moons/saturn/titan.txt", "moons/jupiter",
                "moons/saturn",
                "moons",
            ])
        #expect(
            entries.map(\.1) == [
                "Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu",
                "QmUJjVtnN8YEeYcS8VmUeWffTWhnMQAkk5DzZdKnPhqUdK",
                "QmZzppb9WHn552rmRqpPfgU5FEiHH6gDwi3MrB9cTdPwdb",
                "QmS5mZddhFPLWFX3w6FzAy9QxyYkaxvUpsWCtZ3r7jub9J",
                "QmaMagZT4rTE7Nonw8KGSK4oe1bh533yhZrCo1HihSG8FK",
                "QmVKvomp91nMih5j6hYBA8KjbiaYvEetU2Q7KvtZkLe9nQ",
            ])
    }

    @Test func smallDirectories() throws {
        let tree = try TemporaryTree(
            [
                "current/hey": "Hey\n", "current/hello/world": "World\n", "hellodir/world": "World\n",
                "dots/.x": "hidden",
            ],
            directories: ["empty"])
        defer { tree.remove() }
        #expect(try add(tree, "current").last?.1 == "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1")
        // Kubo checks the line of the file, hellodir/world.
        #expect(try add(tree, "hellodir").first?.1 == "Qma9CyFdG5ffrZCcYSin2uAETygB25cswVwEYYzwfQuhTe")
        #expect(try add(tree, "empty").last?.1 == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
        #expect(
            try add(tree, "empty") { $0.cidVersion = 1 }.last?.1
                == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
        // Dot files are left out unless asked for (Kubo's --hidden).
        #expect(try add(tree, "dots").map(\.1) == ["QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"])
        #expect(try add(tree, "dots") { $0.includeHidden = true }.count == 2)
    }

    @Test func refusals() throws {
        let tree = try TemporaryTree(["d/f": "x"])
        defer { tree.remove() }
        let importer = try UnixFSImporter(sink: nil)
        #expect(throws: IPFSError.self) { try importer.add(tree.path("d"), recursive: false) }
        #expect(throws: IPFSError.self) { try importer.add(tree.path("missing"), recursive: true) }
        #expect(throws: IPFSError.self) {
            try UnixFSImporter(options: importOptions { $0.cidVersion = 9 }, sink: nil)
        }
    }
}
