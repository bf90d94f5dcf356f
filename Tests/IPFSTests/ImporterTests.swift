import IPFS
import Multiformats
import Testing

@Suite struct ImporterKnownAnswers {
    func cid(_ bytes: [UInt8], _ configure: (inout ImportOptions) -> Void = { _ in }) throws -> String {
        var options = ImportOptions()
        configure(&options)
        return try UnixFSImporter(options: options, sink: nil).addFile(bytes: bytes).cid.description
    }

    @Test func emptyFile() throws {
        #expect(try cid([]) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    }

    @Test func helloWorld() throws {
        #expect(try cid(Array("hello world\n".utf8)) == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    }

    @Test func helloWorldRawV1() throws {
        #expect(
            try cid(Array("hello world\n".utf8)) { $0.cidVersion = 1 }
                == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    }
}
