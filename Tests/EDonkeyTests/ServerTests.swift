import EDonkey
import Foundation
import NIOCore
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage
import TestSupport
import Testing

@Suite("The index server with PeerStack clients on loopback", .serialized)
struct ServerTests {
    @Test(
        "high and low IDs, offers, a boolean search with constraints, sources; a departed client's files go")
    func indexing() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ED2KServer.start(on: Endpoint("127.0.0.1:0")!, group: group)
        let address = try #require(server.localAddress)
        // A client whose port answers (a listener) gets a high ID: its address.
        let listener = try await TCPListener.bind(on: Endpoint("127.0.0.1:0")!, group: group) { _ in }
        let port = try #require(listener.localAddress?.port)
        let sharer = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 1, count: 16), port: port, group: group)
        #expect(sharer.clientID == 0x0100_007F)
        #expect(sharer.serverMessages.contains { $0.contains("PeerStack") })
        // One whose port does not: a low ID.
        let searcher = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 2, count: 16), port: 1, group: group)
        #expect(searcher.clientID < 1 << 24)

        let song = FileEntry(
            hash: [UInt8](repeating: 0xA1, count: 16), clientID: 0xFBFB_FBFB, port: 0xFBFB,
            tags: [
                EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("Free Music Live 1999.mp3")),
                EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(7_000_000)),
                EDonkey.Tag(.id(EDonkey.Tag.fileType), .string("Audio")),
            ])
        let video = FileEntry(
            hash: [UInt8](repeating: 0xB2, count: 16), clientID: 0xFCFC_FCFC, port: 0xFCFC,
            tags: [
                EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("free music video.avi")),
                EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(700_000_000)),
                EDonkey.Tag(.id(EDonkey.Tag.fileType), .string("Video")),
            ])
        try await sharer.offer([song, video])
        var counts = (users: 0, files: 0)
        for _ in 0..<100 where counts.files < 2 {
            counts = try await server.counts()
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(counts.users == 2 && counts.files == 2)

        let both = try await searcher.search(.and(.term("free"), .term("music")))
        #expect(Set(both.compactMap(\.name)) == ["Free Music Live 1999.mp3", "free music video.avi"])
        let audioOnly = try await searcher.search(
            .and(.term("music"), .meta(value: "Audio", tag: .id(EDonkey.Tag.fileType))))
        #expect(audioOnly.compactMap(\.name) == ["Free Music Live 1999.mp3"])
        let small = try await searcher.search(
            .and(
                .term("music"),
                .numeric(value: 100_000_000, comparison: .less, tag: .id(EDonkey.Tag.fileSize))))
        #expect(small.compactMap(\.name) == ["Free Music Live 1999.mp3"])
        let notLive = try await searcher.search(.not(.term("music"), .term("live")))
        #expect(notLive.compactMap(\.name) == ["free music video.avi"])
        #expect(both.first?.clientID == 0x0100_007F && both.first?.port == port)

        let sources = try await searcher.sources(of: song.hash, size: 7_000_000)
        #expect(sources.map(\.id) == [0x0100_007F] && sources.map(\.port) == [port])

        sharer.close()
        for _ in 0..<100 where counts.files > 0 {
            counts = try await server.counts()
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(counts.files == 0 && counts.users == 1)
        #expect(try await searcher.search(.term("music")).isEmpty)
        searcher.close()
        await listener.close()
        await server.shutdown()
    }
}

@Suite("Client to client on loopback", .serialized)
struct TransferTests {
    @Test("PeerStack's downloader fetches three parts from PeerStack's uploader, every part checked")
    func transfer() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = SeededGenerator.bytes(20_000_000, seed: 31)
        let source = directory.appendingPathComponent("source.bin")
        try Data(bytes).write(to: source)
        let file = try ED2KSharedFile(path: FilePath(source.path))
        #expect(file.partHashes.count == 3)
        let uploader = try await ED2KUploader.start(
            sharing: [file], userHash: [UInt8](repeating: 3, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        let target = FilePath(directory.appendingPathComponent("got.bin").path)
        let size = try await ED2KDownload.fetch(
            hash: file.hash, size: file.size, from: try #require(uploader.localAddress), to: target,
            userHash: [UInt8](repeating: 4, count: 16), ourPort: 1, group: group)
        #expect(size == 20_000_000)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target.string)) == Data(bytes))
        // A file it does not share: refused, nothing left behind.
        await #expect(throws: ED2KDownload.Failure.self) {
            _ = try await ED2KDownload.fetch(
                hash: [UInt8](repeating: 9, count: 16), size: 100, from: try #require(uploader.localAddress),
                to: FilePath(directory.appendingPathComponent("none").path),
                userHash: [UInt8](repeating: 4, count: 16),
                ourPort: 1, group: group, timeout: .seconds(5))
        }
        await uploader.shutdown()
    }

    @Test("A .part file's verified parts are kept: only the missing and the wrong part are fetched")
    func resume() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = SeededGenerator.bytes(20_000_000, seed: 32)
        let source = directory.appendingPathComponent("source.bin")
        try Data(bytes).write(to: source)
        let file = try ED2KSharedFile(path: FilePath(source.path))
        let uploader = try await ED2KUploader.start(
            sharing: [file], userHash: [UInt8](repeating: 3, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        // As a stopped run leaves it: part 0 whole, part 1 half and wrong, part 2 missing.
        let target = directory.appendingPathComponent("got.bin")
        var partial = Array(bytes[0..<ED2KHasher.partSize])
        partial += [UInt8](repeating: 0xEE, count: ED2KHasher.partSize / 2)
        try Data(partial).write(to: URL(fileURLWithPath: target.path + ".part"))
        let first = Mutex<UInt64?>(nil)
        let size = try await ED2KDownload.fetch(
            hash: file.hash, size: file.size, from: try #require(uploader.localAddress),
            to: FilePath(target.path), userHash: [UInt8](repeating: 4, count: 16), ourPort: 1, group: group
        ) { done, _ in first.withLock { if $0 == nil { $0 = done } } }
        #expect(size == 20_000_000)
        #expect(first.withLock { $0 } == UInt64(ED2KHasher.partSize), "the verified part was not kept")
        #expect(try Data(contentsOf: target) == Data(bytes))
        #expect(!FileManager.default.fileExists(atPath: target.path + ".part"))
        await uploader.shutdown()
    }

    @Test("AICH recovery data for every part checks against the root; a changed hash does not")
    func aichRecovery() throws {
        for size in [200_000, ED2KHasher.partSize, 2 * ED2KHasher.partSize, 25_000_000] {
            var hasher = AICHHasher()
            hasher.update(SeededGenerator.bytes(size, seed: UInt64(size)))
            let tree = hasher.finalizeTree()
            let parts = (size + ED2KHasher.partSize - 1) / ED2KHasher.partSize
            for part in 0..<parts {
                let recovery = try #require(tree.recovery(part: part), "size \(size) part \(part)")
                let blocks = try #require(
                    AICHTree.verify(recovery, part: part, size: UInt64(size), root: tree.root),
                    "size \(size) part \(part)")
                let first = AICHTree.leavesBefore(UInt64(part * ED2KHasher.partSize))
                #expect(blocks == Array(tree.leaves[first..<first + blocks.count]))
                var forged = recovery
                forged[forged.count / 2].hash[0] ^= 1
                #expect(AICHTree.verify(forged, part: part, size: UInt64(size), root: tree.root) == nil)
                // Through the wire and back.
                let answer = ClientMessage.aichAnswer(
                    hash: [UInt8](repeating: 1, count: 16), part: UInt16(part), root: tree.root,
                    recovery: recovery,
                    large: false)
                #expect(try ClientMessage(answer.packet()) == answer)
            }
        }
    }

    @Test("A part with one bad block: the peer's AICH data names it, and only it is fetched again")
    func aichRepair() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = SeededGenerator.bytes(12_000_000, seed: 35)
        let path = directory.appendingPathComponent("flaky.bin")
        try Data(bytes).write(to: path)
        let shared = try ED2KSharedFile(path: FilePath(path.path))
        // One block of part 1 goes bad on the peer's disk after hashing; it is mended (as a
        // transient fault would be) once the downloader has named the bad block.
        let badOffset = UInt64(ED2KHasher.partSize) + 3 * UInt64(AICHHasher.blockSize) + 17
        let handle = try FileHandle(forWritingTo: path)
        try handle.seek(toOffset: badOffset)
        handle.write(Data(repeating: 0x42, count: 100))
        try handle.close()
        let peer = try await ED2KUploader.start(
            sharing: [shared], userHash: [UInt8](repeating: 5, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        let named = Mutex<[Int: Int]>([:])
        let target = directory.appendingPathComponent("got.bin")
        let size = try await ED2KDownload.fetch(
            hash: shared.hash, size: shared.size, from: try #require(peer.localAddress),
            to: FilePath(target.path),
            userHash: [UInt8](repeating: 4, count: 16), ourPort: 0, group: group, aich: shared.aich.root,
            recovered: { part, bad in
                named.withLock { $0[part] = bad }
                try? Data(bytes).write(to: path)
            })
        #expect(size == 12_000_000)
        #expect(named.withLock { $0 } == [1: 1], "the AICH data did not name exactly the bad block")
        #expect(try Data(contentsOf: target) == Data(bytes))
        await peer.shutdown()
    }

    @Test("A client flooding part requests (more than 48 ranges waiting) is dropped; others are served")
    func partRequestFlood() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = SeededGenerator.bytes(10_000_000, seed: 36)
        let path = directory.appendingPathComponent("big.bin")
        try Data(bytes).write(to: path)
        let shared = try ED2KSharedFile(path: FilePath(path.path))
        let peer = try await ED2KUploader.start(
            sharing: [shared], userHash: [UInt8](repeating: 5, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        let address = try #require(peer.localAddress)
        // 17 requests of three distinct 180 KiB ranges at once: 51 waiting, past the 48 allowed.
        let closed = Collected()
        let flooder = try await TCPDialer.connect(to: address, on: group.next()) { channel in
            try channel.pipeline.syncOperations.addHandler(FirstBytes(into: closed))
        }.get()
        var flood = ClientMessage.startUploadRequest(hash: shared.hash).packet().encoded()
        for request in 0..<17 {
            let ranges = (0..<3).map { index -> (start: UInt32, end: UInt32) in
                let start = UInt32((request * 3 + index) * 184_320)
                return (start, start + 184_320)
            }
            flood += ClientMessage.requestParts(hash: shared.hash, ranges: ranges).packet().encoded()
        }
        try await flooder.writeAndFlush(ByteBuffer(bytes: flood)).get()
        let dropped = await eventually(seconds: 10) { !flooder.isActive }
        #expect(dropped, "the flooding client was not dropped")
        let target = directory.appendingPathComponent("got.bin")
        #expect(
            try await ED2KDownload.fetch(
                hash: shared.hash, size: shared.size, from: address, to: FilePath(target.path),
                userHash: [UInt8](repeating: 4, count: 16), ourPort: 0, group: group) == 10_000_000)
        await peer.shutdown()
    }

    @Test("A source whose part fails its MD4 twice is banned; the file comes whole from another")
    func banBadSource() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = SeededGenerator.bytes(12_000_000, seed: 33)
        let honestPath = directory.appendingPathComponent("honest.bin")
        let liarPath = directory.appendingPathComponent("liar.bin")
        try Data(bytes).write(to: honestPath)
        try Data(bytes).write(to: liarPath)
        let honest = try ED2KSharedFile(path: FilePath(honestPath.path))
        let liar = try ED2KSharedFile(path: FilePath(liarPath.path))
        // After hashing, the liar's copy changes in part 1: it serves the right hashes and
        // wrong data.
        let handle = try FileHandle(forWritingTo: liarPath)
        try handle.seek(toOffset: UInt64(ED2KHasher.partSize + 100))
        handle.write(Data(repeating: 0x42, count: 1_000))
        try handle.close()
        let liarPeer = try await ED2KUploader.start(
            sharing: [liar], userHash: [UInt8](repeating: 5, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        let honestPeer = try await ED2KUploader.start(
            sharing: [honest], userHash: [UInt8](repeating: 6, count: 16), on: Endpoint("127.0.0.1:0")!,
            group: group)
        let liarAddress = try #require(liarPeer.localAddress)
        let banned = Mutex<[Endpoint]>([])
        let target = directory.appendingPathComponent("got.bin")
        let size = try await ED2KDownload.fetch(
            hash: honest.hash, size: honest.size,
            sources: [liarAddress, try #require(honestPeer.localAddress)],
            server: nil, to: FilePath(target.path), userHash: [UInt8](repeating: 4, count: 16), group: group,
            note: { note in
                if case .banned(let source, part: 1) = note { banned.withLock { $0.append(source) } }
            })
        #expect(size == 12_000_000)
        #expect(banned.withLock { $0 } == [liarAddress])
        #expect(try Data(contentsOf: target) == Data(bytes))
        await liarPeer.shutdown()
        await honestPeer.shutdown()
    }
}

/// Whether `condition` holds within `seconds`, checked every 20 ms.
func eventually(seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

final class Collected: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

final class FirstBytes: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let collected: Collected
    init(into collected: Collected) { self.collected = collected }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let incoming = Array(unwrapInboundIn(data).readableBytesView)
        collected.bytes.withLock { $0 += incoming }
    }
}

@Suite("Callbacks for low-ID clients", .serialized)
struct CallbackTests {
    @Test("a low-ID sharer, asked by the server, connects to the high-ID client and says hello first")
    func callback() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ED2KServer.start(on: Endpoint("127.0.0.1:0")!, group: group)
        let address = try #require(server.localAddress)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("shared.bin")
        try Data(SeededGenerator.bytes(1_000, seed: 34)).write(to: path)
        let sharerHash = [UInt8](repeating: 0x51, count: 16)
        let uploader = try await ED2KUploader.start(
            sharing: [try ED2KSharedFile(path: FilePath(path.path))], userHash: sharerHash,
            on: Endpoint("127.0.0.1:0")!, group: group)
        // Port 1 does not answer: a low ID.
        let sharer = try await ED2KServerSession.connect(
            to: address, userHash: sharerHash, port: 1, group: group)
        #expect(sharer.clientID < 1 << 24)
        try await uploader.announce(on: sharer, server: (0, address.port))

        // The asking client listens (a high ID) and records the first packet of whoever comes.
        let first = Collected()
        let listener = try await TCPListener.bind(on: Endpoint("127.0.0.1:0")!, group: group) { channel in
            try channel.pipeline.syncOperations.addHandler(FirstBytes(into: first))
        }
        let asker = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 0x52, count: 16),
            port: try #require(listener.localAddress?.port),
            group: group)
        #expect(asker.clientID >= 1 << 24)
        try await asker.requestCallback(from: sharer.clientID)
        let asked = try #require(await sharer.nextCallback(timeout: .seconds(30)))
        #expect(asked == Endpoint(ip: [127, 0, 0, 1], port: try #require(listener.localAddress?.port)))
        uploader.callBack(to: asked)
        var hello: ClientMessage?
        for _ in 0..<200 where hello == nil {
            var framer = EDonkeyFramer()
            framer.append(first.bytes.withLock { $0 })
            if let packet = try framer.next() { hello = try ClientMessage(packet) }
            try await Task.sleep(for: .milliseconds(25))
        }
        guard case .hello(let userHash, let id, _, _, _, _) = hello else {
            Issue.record("no hello from the sharer: \(String(describing: hello))")
            return
        }
        #expect(userHash == sharerHash && id == sharer.clientID)
        asker.close()
        sharer.close()
        await listener.close()
        await uploader.shutdown()
        await server.shutdown()
    }

}

@Suite("The index server's UDP port", .serialized)
struct ServerUDPTests {
    /// One datagram to `port` on 127.0.0.1 and the answers that come within `wait`.
    static func ask(_ port: UInt16, _ message: ServerUDPMessage, answers: Int = 1) throws
        -> [ServerUDPMessage]
    {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bytes = message.encoded()
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var received: [ServerUDPMessage] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while received.count < answers {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received.append(try ServerUDPMessage(datagram: Array(buffer[0..<count])))
        }
        return received
    }

    @Test("status and description with their challenges, a global search, sources of several files")
    func udpPort() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var configuration = ED2KServerConfiguration()
        configuration.name = "udp test server"
        let server = try await ED2KServer.start(
            on: Endpoint("127.0.0.1:0")!, configuration: configuration, group: group)
        let address = try #require(server.localAddress)
        let udp = try #require(server.udpAddress)
        #expect(udp.port == address.port + 4)
        let listener = try await TCPListener.bind(on: Endpoint("127.0.0.1:0")!, group: group) { _ in }
        let port = try #require(listener.localAddress?.port)
        let sharer = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 1, count: 16), port: port, group: group)
        let song = FileEntry(
            hash: [UInt8](repeating: 0xA1, count: 16), clientID: 0xFBFB_FBFB, port: 0xFBFB,
            tags: [
                EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("udp music.mp3")),
                EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(7_000_000)),
            ])
        try await sharer.offer([song])
        for _ in 0..<100 where try await server.counts().files < 1 {
            try await Task.sleep(for: .milliseconds(20))
        }

        let status = try Self.ask(udp.port, .statusRequest(challenge: 0x55AA_1234))
        guard case .status(let answer) = status.first else {
            Issue.record("no status answer: \(status)")
            return
        }
        #expect(answer.challenge == 0x55AA_1234 && answer.users == 1 && answer.files == 1)
        #expect(answer.udpFlags & 0x01 != 0)
        #expect(
            try Self.ask(udp.port, .descriptionRequest(challenge: 0x1234_F0FF))
                == [
                    .description(
                        challenge: 0x1234_F0FF, name: "udp test server",
                        description: configuration.description)
                ])
        let found = try Self.ask(udp.port, .globalSearch(.term("music")))
        guard case .globalSearchResult(let entry) = found.first else {
            Issue.record("no search result: \(found)")
            return
        }
        #expect(entry.name == "udp music.mp3" && entry.clientID == 0x0100_007F && entry.port == port)
        // Two files asked for, one known: one answer, with the sharer as its source.
        let sources = try Self.ask(
            udp.port,
            .globalGetSources2([
                (song.hash, UInt64(7_000_000)), ([UInt8](repeating: 9, count: 16), UInt64(5)),
            ]))
        guard case .globalFoundSources(let hash, let list) = sources.first else {
            Issue.record("no sources: \(sources)")
            return
        }
        #expect(hash == song.hash && list.map { $0.id } == [0x0100_007F] && list.map { $0.port } == [port])
        sharer.close()
        await listener.close()
        await server.shutdown()
    }

    @Test("a zero size in eMule's 0x94 source request survives a round trip (found by the fuzzer)")
    func zeroSizeRoundTrip() throws {
        let message = ServerUDPMessage.globalGetSources2([
            ([UInt8](repeating: 1, count: 16), 0), ([UInt8](repeating: 2, count: 16), 5),
        ])
        #expect(try ServerUDPMessage(datagram: message.encoded()) == message)
    }

    @Test("an address over its datagrams per minute gets nothing until the minute has passed")
    func udpRateLimit() {
        var configuration = ED2KServerConfiguration()
        configuration.udpRequestsPerMinute = 5
        var state = ServerState(
            configuration: configuration, hash: [UInt8](repeating: 0, count: 16),
            endpoint: Endpoint("10.0.0.1:4661")!)
        let answered = (0..<8).filter { i in
            !state.receivedDatagram(
                .statusRequest(challenge: UInt32(i)), from: [10, 0, 0, 2], now: .seconds(i)
            ).isEmpty
        }
        #expect(answered == [0, 1, 2, 3, 4])
        #expect(
            !state.receivedDatagram(.statusRequest(challenge: 1), from: [10, 0, 0, 3], now: .seconds(8))
                .isEmpty)
        #expect(
            !state.receivedDatagram(.statusRequest(challenge: 1), from: [10, 0, 0, 2], now: .seconds(61))
                .isEmpty)
    }
}

@Suite("The index server's snapshot")
struct SnapshotTests {
    static let song = FileEntry(
        hash: [UInt8](repeating: 0xC3, count: 16), clientID: 0xFBFB_FBFB, port: 0xFBFB,
        tags: [
            EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("remembered song.ogg")),
            EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(5_000_000)),
        ])

    /// A client at `address` logged in (high ID when `reachable`) on `state`.
    static func login(
        _ state: inout ServerState, _ connection: Int, address: [UInt8], user: UInt8, reachable: Bool
    ) {
        let id = ServerConnection(connection)
        _ = state.connected(id, address: address)
        _ = state.received(
            .login(userHash: [UInt8](repeating: user, count: 16), clientID: 0, port: 4662, tags: []),
            from: id,
            now: .zero)
        _ = state.reachability(id, reachable: reachable)
    }

    static func sources(_ state: inout ServerState, asker: Int, now: Duration) -> [UInt32] {
        let actions = state.received(
            .getSources(hash: song.hash, size: 5_000_000), from: ServerConnection(asker), now: now)
        for case .send(_, .foundSources(_, let found)) in actions { return found.map(\.id) }
        return []
    }

    @Test(
        "a restored high-ID client's files are listed and given as sources until it returns or an hour passes"
    )
    func restore() throws {
        let endpoint = Endpoint("10.0.0.1:4661")!
        var before = ServerState(hash: [UInt8](repeating: 1, count: 16), endpoint: endpoint)
        Self.login(&before, 1, address: [10, 0, 0, 5], user: 0x55, reachable: true)
        _ = before.received(.offerFiles([Self.song]), from: ServerConnection(1), now: .zero)
        Self.login(&before, 2, address: [10, 0, 0, 6], user: 0x66, reachable: false)
        _ = before.received(.offerFiles([Self.song]), from: ServerConnection(2), now: .zero)
        let snapshot = before.snapshot()
        // The low-ID client is not kept: nobody could reach it.
        #expect(snapshot.clients.map(\.id) == [ServerState.highID([10, 0, 0, 5])])
        let decoded = try JSONDecoder().decode(
            ServerState.Snapshot.self, from: JSONEncoder().encode(snapshot))
        #expect(decoded == snapshot)

        var after = ServerState(hash: snapshot.serverHash, endpoint: endpoint)
        after.restore(decoded, now: .zero)
        #expect(after.fileCount == 1 && after.userCount == 0)
        Self.login(&after, 7, address: [10, 0, 0, 7], user: 0x77, reachable: false)
        #expect(Self.sources(&after, asker: 7, now: .seconds(1)) == [ServerState.highID([10, 0, 0, 5])])
        let answer = after.received(.search(.term("remembered")), from: ServerConnection(7), now: .seconds(1))
        guard case .send(_, .searchResults(let results, _))? = answer.first else {
            Issue.record("no results")
            return
        }
        #expect(results.map(\.name) == ["remembered song.ogg"])

        // Back again: the remembered entry gives way; its new offer is what counts.
        var returning = after
        Self.login(&returning, 8, address: [10, 0, 0, 5], user: 0x55, reachable: true)
        #expect(Self.sources(&returning, asker: 7, now: .seconds(2)).isEmpty)
        _ = returning.received(.offerFiles([Self.song]), from: ServerConnection(8), now: .seconds(3))
        #expect(Self.sources(&returning, asker: 7, now: .seconds(4)) == [ServerState.highID([10, 0, 0, 5])])

        // Never back: forgotten after an hour.
        #expect(Self.sources(&after, asker: 7, now: .seconds(3_601)).isEmpty)
        #expect(after.fileCount == 0)
    }

    @Test("ED2KServer writes its snapshot at shutdown and a new server lists what it kept")
    func acrossRestart() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ed2k-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = ED2KServerConfiguration()
        configuration.snapshot = directory.appendingPathComponent("index.json").path
        let first = try await ED2KServer.start(
            on: Endpoint("127.0.0.1:0")!, configuration: configuration, group: group)
        let listener = try await TCPListener.bind(on: Endpoint("127.0.0.1:0")!, group: group) { _ in }
        let sharer = try await ED2KServerSession.connect(
            to: try #require(first.localAddress), userHash: [UInt8](repeating: 1, count: 16),
            port: try #require(listener.localAddress?.port), group: group)
        try await sharer.offer([Self.song])
        for _ in 0..<100 where try await first.counts().files < 1 {
            try await Task.sleep(for: .milliseconds(20))
        }
        await first.shutdown()
        sharer.close()

        let second = try await ED2KServer.start(
            on: Endpoint("127.0.0.1:0")!, configuration: configuration, group: group)
        let searcher = try await ED2KServerSession.connect(
            to: try #require(second.localAddress), userHash: [UInt8](repeating: 2, count: 16), port: 1,
            group: group)
        let found = try await searcher.search(.term("remembered"))
        #expect(found.map(\.name) == ["remembered song.ogg"])
        #expect(found.first?.port == listener.localAddress?.port)
        searcher.close()
        await listener.close()
        await second.shutdown()
    }
}
