import EDonkey
import Foundation
import Multiformats
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage
import TestSupport
import Testing

/// aMule's daemon (amuled 2.3.3) against PeerStack's index server. aMule refuses servers on
/// 127.0.0.0/8, so it runs in a network namespace this test makes, joined to this one by a veth
/// pair with private addresses and no route anywhere else; the server listens on this side's
/// address. amulecmd drives amuled over its EC port inside the namespace.
@Suite("aMule and PeerStack's index server", .serialized)
struct AMuleInteropTests {
    struct Namespace {
        let name: String
        let hostAddress: String
        let peerAddress: String
        /// This side's end of the veth pair.
        let hostInterface: String

        init() throws {
            let pid = Int(getpid())
            name = "psam\(pid)"
            let subnet = 100 + pid % 100
            hostAddress = "192.168.\(subnet).1"
            peerAddress = "192.168.\(subnet).2"
            let ip = Interop.onPath("ip") ?? "/usr/sbin/ip"
            let host = "psah\(pid % 100_000)"
            hostInterface = host
            let inside = "psan\(pid % 100_000)"
            _ = try? Interop.run(ip, ["netns", "del", name], timeout: 10)
            for arguments in [
                ["netns", "add", name], ["link", "add", host, "type", "veth", "peer", "name", inside],
                ["link", "set", inside, "netns", name], ["addr", "add", "\(hostAddress)/24", "dev", host],
                ["link", "set", host, "up"], ["-n", name, "addr", "add", "\(peerAddress)/24", "dev", inside],
                ["-n", name, "link", "set", inside, "up"], ["-n", name, "link", "set", "lo", "up"],
            ] {
                _ = try Interop.check(ip, arguments, timeout: 10)
            }
        }

        /// Deleting the namespace deletes the veth pair with it.
        func remove() {
            _ = try? Interop.run(Interop.onPath("ip") ?? "/usr/sbin/ip", ["netns", "del", name], timeout: 10)
        }
    }

    static func amulecmd(_ namespace: Namespace, _ command: String) throws -> String {
        let result = try Interop.run(
            Interop.onPath("ip") ?? "/usr/sbin/ip",
            [
                "netns", "exec", namespace.name, Interop.onPath("amulecmd") ?? "/usr/bin/amulecmd", "-h",
                "127.0.0.1",
                "-p", "4712", "-P", "secret", "-c", command,
            ], timeout: 30)
        return result.stdout
    }

    /// amuled's profile: EC on 4712 with password "secret", LAN servers allowed, nothing fetched
    /// from the Internet (server lists, Kad nodes), one shared file in its incoming folder.
    static func profile(in home: URL, sharedFile: String, bytes: Data) throws -> URL {
        let config = home.appendingPathComponent(".aMule")
        let incoming = home.appendingPathComponent("incoming")
        let temp = home.appendingPathComponent("temp")
        for directory in [config, incoming, temp] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        try bytes.write(to: incoming.appendingPathComponent(sharedFile))
        let password = "5ebe2294ecd0e0f08eab7690d2a6ee69"  // MD5 of "secret"
        let settings = """
            [eMule]
            Nick=amule-interop
            Port=4662
            UDPPort=4672
            Autoconnect=0
            Reconnect=0
            AddServersFromServer=0
            AddServersFromClient=0
            Serverlist=0
            FilterLanIPs=0
            IpFilterServers=0
            ConnectToKad=0
            ConnectToED2K=1
            UPnPEnabled=0
            IncomingDir=\(incoming.path)
            TempDir=\(temp.path)
            Ed2kServersUrl=
            KadNodesUrl=
            MaxUpload=1000000
            UploadCapacity=1000000
            SlotAllocation=100
            [ExternalConnect]
            AcceptExternalConnections=1
            ECAddress=127.0.0.1
            ECPort=4712
            ECPassword=\(password)
            [UPnP]
            UPnPEnabled=0
            [IPFilter]
            IPFilterClients=0
            IPFilterServers=0
            IPFilterAutoLoad=0
            URL=

            """
        try settings.write(to: config.appendingPathComponent("amule.conf"), atomically: true, encoding: .utf8)
        return config
    }

    @Test(
        "amuled logs in with a high ID, offers its file, finds it and PeerStack's; PeerStack downloads aMule's 30 MiB"
    )
    func loginOfferSearch() async throws {
        try #require(Interop.enabled("amuled"), "amule-daemon is not installed")
        try #require(Interop.required || getuid() == 0, "network namespaces need root")
        let namespace = try Namespace()
        defer { namespace.remove() }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("amule-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        // 30 MiB: more than three parts, so the hashset and part checks are exercised.
        // Half random, half text: aMule sends the text's blocks zlib-packed (OP_COMPRESSEDPART),
        // the random ones plain, so both kinds of part are checked.
        var text: [UInt8] = []
        var line = 0
        while text.count < 15 << 20 {
            text += Array("bar \(line) of the score, allegro ma non troppo\n".utf8)
            line += 1
        }
        let offered = Data(SeededGenerator.bytes(15 << 20, seed: 19) + text.prefix(15 << 20))
        let config = try Self.profile(in: home, sharedFile: "amule offered score.txt", bytes: offered)

        let logins = Mutex<[UInt32]>([])
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ED2KServer.start(on: Endpoint("\(namespace.hostAddress):0")!, group: group) {
            event in
            if case .login(_, let id, _) = event { logins.withLock { $0.append(id) } }
        }
        let address = try #require(server.localAddress)
        defer { Task { await server.shutdown() } }
        // Everything on the link is captured, for tshark's edonkey dissector to read after.
        let capture = try await PacketCapture(
            interface: namespace.hostInterface, filter: "tcp port \(address.port)",
            file: home.appendingPathComponent("edonkey.pcapng"), probe: (namespace.peerAddress, 9))

        // PeerStack offers a file of its own.
        // Hostile peers first: 100 connections that never log in, and one announcing a 64 MiB
        // packet. The server must drop the liar on its header and keep serving the honest
        // clients below (aMule and PeerStack's) while the silent ones hold their sockets.
        let silent = (0..<100).compactMap { _ in Self.tcpConnect(address) }
        #expect(silent.count == 100)
        defer { silent.forEach { close($0) } }
        let liar = try #require(Self.tcpConnect(address))
        defer { close(liar) }
        let header: [UInt8] = [0xE3, 0x00, 0x00, 0x00, 0x04, 0x01]
        _ = header.withUnsafeBytes { send(liar, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var byte: UInt8 = 0
        #expect(recv(liar, &byte, 1, 0) <= 0, "a 64 MiB packet length did not close the connection")

        var hasher = ED2KHasher()
        hasher.update(Array("a file PeerStack offers".utf8))
        let (hash, _) = hasher.finalize()
        let session = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 7, count: 16), port: 1, group: group)
        defer { session.close() }
        try await session.offer([
            FileEntry(
                hash: hash, clientID: 0xFBFB_FBFB, port: 0xFBFB,
                tags: [
                    EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("peerstack offered notes.txt")),
                    EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(23)),
                ])
        ])

        let amuled = try await Self.launchAMule(namespace, home: home, config: config, server: address)
        defer { amuled.stop() }
        // Two logins: ours, then amuled's.
        try await Self.until(30, "amuled's login") { logins.withLock { $0.count } >= 2 }
        let amuleID = try #require(logins.withLock { $0.last })
        #expect(
            amuleID == ServerState.highID(IPAddress(namespace.peerAddress)!.bytes),
            "amuled did not get a high ID")
        try await Self.until(20, "amuled to say it has a high ID") {
            try Self.amulecmd(namespace, "status").contains("HighID")
        }

        // aMule offers its shared files within about a minute of logging in.
        try await Self.until(120, "amuled's offer") { try await server.counts().files >= 2 }
        _ = try Self.amulecmd(namespace, "search local offered")
        var results = ""
        try await Self.until(30, "search results in amulecmd") {
            results = try Self.amulecmd(namespace, "results")
            return results.contains("amule offered score.txt")
                && results.contains("peerstack offered notes.txt")
        }
        // And PeerStack's client finds aMule's file, with aMule (its high ID) as the source.
        let found = try await session.search(.term("score"))
        #expect(found.first?.name == "amule offered score.txt")
        #expect(found.first?.clientID == amuleID)

        // PeerStack downloads aMule's file from aMule, found through the server's sources.
        let tune = try #require(found.first)
        let size = try #require(tune.size)
        let sources = try await session.sources(of: tune.hash, size: size)
        let packedBytes = Mutex(0)
        let source = try #require(sources.first)
        let target = home.appendingPathComponent("downloaded.ogg")
        let fetched = try await ED2KDownload.fetch(
            hash: tune.hash, size: size,
            from: Endpoint(ip: ServerState.address(ofHighID: source.id), port: source.port)!,
            to: FilePath(target.path), userHash: [UInt8](repeating: 7, count: 16), ourPort: 1, group: group,
            packed: { bytes in packedBytes.withLock { $0 += bytes } })
        #expect(fetched == UInt64(offered.count))
        #expect(try Data(contentsOf: target) == offered)
        // aMule's AICH recovery data for part 1, asked as eMule asks it, checks against the root
        // PeerStack computes, and names the blocks PeerStack has.
        var aichHasher = AICHHasher()
        aichHasher.update(Array(offered))
        let tree = aichHasher.finalizeTree()
        let recovery = try await ED2KDownload.recoveryData(
            hash: tune.hash, size: size, part: 1, root: tree.root,
            from: Endpoint(ip: ServerState.address(ofHighID: source.id), port: source.port)!,
            userHash: [UInt8](repeating: 7, count: 16), group: group)
        let first = AICHTree.leavesBefore(UInt64(ED2KHasher.partSize))
        #expect(recovery == Array(tree.leaves[first..<first + 53]))
        // Our hello says we take packed parts: aMule packed the text half.
        #expect(
            packedBytes.withLock { $0 } >= 5 << 20,
            "aMule sent few packed parts: \(packedBytes.withLock { $0 })")
        _ = try? Self.amulecmd(namespace, "shutdown")
        _ = try? await amuled.waitForExit(timeout: 30)
        // aMule answered the AICH request above only because the root asked under is its own
        // (it compares them first), so the roots are equal. known.met (tag 0x27) says so too
        // when aMule had written the tag by the time it stopped (under load it may not have).
        let known = try Self.knownFiles(Data(contentsOf: config.appendingPathComponent("known.met")))
        if let stored = known[tune.hash] {
            #expect(stored == AICHHasher.string(tree.root), "aMule's AICH root differs: \(known)")
        }

        // tshark's edonkey dissector reads every packet of the session (ours and aMule's) with
        // nothing malformed: login, ID change, status, ident, offers, search and results.
        try await capture.stop()
        try Self.expectDissected(
            capture, port: address.port, types: [0x01, 0x40, 0x34, 0x41, 0x15, 0x16, 0x33])
    }

    @Test("amuled downloads a 25 MiB file PeerStack shares, found through PeerStack's server")
    func amuleDownloadsFromPeerStack() async throws {
        try #require(Interop.enabled("amuled"), "amule-daemon is not installed")
        try #require(Interop.required || getuid() == 0, "network namespaces need root")
        let namespace = try Namespace()
        defer { namespace.remove() }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("amule-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        let config = try Self.profile(in: home, sharedFile: "nothing.txt", bytes: Data("x".utf8))
        let group = MultiThreadedEventLoopGroup.singleton
        let logins = Mutex<[UInt32]>([])
        let sourcesGiven = Mutex(0)
        let server = try await ED2KServer.start(on: Endpoint("\(namespace.hostAddress):0")!, group: group) {
            event in
            if case .login(_, let id, _) = event { logins.withLock { $0.append(id) } }
            if case .sources(_, _, let found) = event { sourcesGiven.withLock { $0 += found } }
        }
        let address = try #require(server.localAddress)
        defer { Task { await server.shutdown() } }

        // 25 MiB: three parts, the last one short.
        let shared = Data(SeededGenerator.bytes(25 << 20, seed: 91))
        let directory = home.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("peerstack shares chorale.flac")
        try shared.write(to: file)
        let entry = try ED2KSharedFile(path: FilePath(file.path))
        let uploader = try await ED2KUploader.start(
            sharing: [entry], userHash: [UInt8](repeating: 9, count: 16),
            on: Endpoint("\(namespace.hostAddress):0")!, group: group)
        defer { Task { await uploader.shutdown() } }
        // The client-to-client session, for tshark's edonkey dissector after.
        let capture = try await PacketCapture(
            interface: namespace.hostInterface, filter: "tcp port \(uploader.localAddress!.port)",
            file: home.appendingPathComponent("upload.pcapng"), probe: (namespace.peerAddress, 9))
        let session = try await ED2KServerSession.connect(
            to: address, userHash: [UInt8](repeating: 9, count: 16), port: uploader.localAddress!.port,
            group: group)
        defer { session.close() }
        #expect(session.clientID >= 1 << 24, "PeerStack's sharer did not get a high ID")
        try await uploader.announce(
            on: session, server: (ServerState.highID(address.ip.bytes), address.port))

        let amuled = try await Self.launchAMule(namespace, home: home, config: config, server: address)
        defer { amuled.stop() }
        try await Self.until(30, "amuled's login") { logins.withLock { $0.count } >= 2 }
        // Hostile peers first: four clients take every upload slot, ask for 48 ranges (8.6 MB)
        // and never read. They must lose their slots (dropped when no data has gone out to
        // them for the stall limit) and aMule, queued meanwhile, must get one.
        let uploaderAddress = try #require(uploader.localAddress)
        let hogs = (0..<4).compactMap { _ in Self.slotHog(uploaderAddress, file: entry) }
        #expect(hogs.count == 4)
        defer { hogs.forEach { close($0) } }
        try await Self.addDownload(namespace, link: "\(entry.link)", hash: entry.hash)
        let landed = home.appendingPathComponent("incoming").appendingPathComponent(entry.name)
        do {
            try await Self.until(120, "aMule's finished download") {
                FileManager.default.fileExists(atPath: landed.path)
            }
        } catch {
            let log =
                (try? String(contentsOf: config.appendingPathComponent("logfile"), encoding: .utf8)) ?? ""
            Issue.record("aMule's log ends: \(log.suffix(3000))")
            Issue.record("amulecmd: \((try? Self.amulecmd(namespace, "show dl")) ?? "")")
            Issue.record("sources given: \(sourcesGiven.withLock { $0 })")
            throw error
        }
        #expect(try Data(contentsOf: landed) == shared, "aMule's copy differs from the shared file")
        #expect(sourcesGiven.withLock { $0 } >= 1, "aMule did not get PeerStack as a source from the server")
        _ = try? Self.amulecmd(namespace, "shutdown")

        // tshark reads the hello, file request, status, hashset, slot, part requests and parts
        // (PeerStack's and aMule's) with nothing malformed.
        try await capture.stop()
        try Self.expectDissected(
            capture, port: uploader.localAddress!.port,
            types: [0x01, 0x4C, 0x58, 0x59, 0x4F, 0x50, 0x51, 0x52, 0x54, 0x55, 0x47, 0x46])
    }

    @Test("aMule's global search reaches a second PeerStack server over UDP and finds what it lists")
    func globalSearchOverUDP() async throws {
        try #require(Interop.enabled("amuled"), "amule-daemon is not installed")
        try #require(Interop.required || getuid() == 0, "network namespaces need root")
        let namespace = try Namespace()
        defer { namespace.remove() }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("amule-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        let config = try Self.profile(in: home, sharedFile: "nothing.txt", bytes: Data("x".utf8))
        let group = MultiThreadedEventLoopGroup.singleton
        let logins = Mutex(0)
        let connected = try await ED2KServer.start(on: Endpoint("\(namespace.hostAddress):0")!, group: group)
        {
            event in
            if case .login = event { logins.withLock { $0 += 1 } }
        }
        defer { Task { await connected.shutdown() } }
        // The second server: aMule only knows it from its list, and reaches it by UDP alone.
        let datagrams = Mutex<[UInt8: Int]>([:])
        let other = try await ED2KServer.start(on: Endpoint("\(namespace.hostAddress):0")!, group: group) {
            event in
            if case .datagram(_, let opcode, let answers) = event {
                datagrams.withLock { $0[opcode, default: 0] += answers }
            }
        }
        defer { Task { await other.shutdown() } }
        let otherAddress = try #require(other.localAddress)
        let udpPort = try #require(other.udpAddress?.port)
        let capture = try await PacketCapture(
            interface: namespace.hostInterface, filter: "udp port \(udpPort)",
            file: home.appendingPathComponent("udp.pcapng"), probe: (namespace.peerAddress, 9))
        let session = try await ED2KServerSession.connect(
            to: otherAddress, userHash: [UInt8](repeating: 8, count: 16), port: 1, group: group)
        defer { session.close() }
        try await session.offer([
            FileEntry(
                hash: [UInt8](repeating: 0x5A, count: 16), clientID: 0xFBFB_FBFB, port: 0xFBFB,
                tags: [
                    EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("faraway udp sonata.ogg")),
                    EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(4_000_000)),
                ])
        ])

        let amuled = try await Self.launchAMule(
            namespace, home: home, config: config, server: try #require(connected.localAddress))
        defer { amuled.stop() }
        try await Self.until(30, "amuled's login") { logins.withLock { $0 } >= 1 }
        _ = try Self.amulecmd(namespace, "add ed2k://|server|\(otherAddress.ip)|\(otherAddress.port)|/")
        _ = try Self.amulecmd(namespace, "search global sonata")
        try await Self.until(60, "the global search's result in amulecmd") {
            try Self.amulecmd(namespace, "results").contains("faraway udp sonata.ogg")
        }
        let seen = datagrams.withLock { $0 }
        #expect(
            [0x98, 0x92, 0x90].contains { seen[$0, default: 0] > 0 },
            "no global search answered over UDP: \(seen)")
        _ = try? Self.amulecmd(namespace, "shutdown")
        // tshark reads aMule's datagrams and the server's answers (0x99 results) as eDonkey,
        // nothing malformed.
        try await capture.stop()
        let values = try capture.fields(
            ["edonkey.message.type", "_ws.malformed"], displayFilter: "edonkey",
            decodeAs: ["udp.port==\(udpPort),edonkey"])
        let types = Set(
            values["edonkey.message.type", default: []].compactMap { Int($0.dropFirst(2), radix: 16) })
        #expect(types.contains(0x99), "no search result datagram in the capture: \(types.sorted())")
        #expect(values["_ws.malformed", default: []].isEmpty, "tshark flagged malformed datagrams")
    }

    /// tshark's edonkey dissector, reading the capture's TCP `port` as eDonkey, finds every
    /// message type in `types` and flags nothing as malformed.
    static func expectDissected(_ capture: PacketCapture, port: UInt16, types expected: [Int]) throws {
        let values = try capture.fields(
            ["edonkey.message.type", "_ws.malformed"], displayFilter: "edonkey",
            decodeAs: ["tcp.port==\(port),edonkey"])
        // tshark prints the types in hex ("0x15").
        let types = Set(
            values["edonkey.message.type", default: []].compactMap { Int($0.dropFirst(2), radix: 16) })
        for opcode in expected {
            #expect(
                types.contains(opcode),
                "no message 0x\(String(opcode, radix: 16)) in the capture: \(types.sorted())")
        }
        #expect(values["_ws.malformed", default: []].isEmpty, "tshark flagged malformed packets")
    }

    /// Starts amuled in the namespace with `config`, waits for its EC port, adds `server` and
    /// connects to it.
    static func launchAMule(_ namespace: Namespace, home: URL, config: URL, server: Endpoint) async throws
        -> BackgroundProgram
    {
        let amuled = try BackgroundProgram(
            Interop.onPath("ip") ?? "/usr/sbin/ip",
            [
                "netns", "exec", namespace.name, "env", "HOME=\(home.path)",
                Interop.onPath("amuled") ?? "/usr/bin/amuled", "-c", config.path, "-o",
            ])
        do {
            try await Self.until(30, "amuled's EC port") {
                (try? Self.amulecmd(namespace, "status"))?.contains("eD2k") == true
            }
            _ = try Self.amulecmd(namespace, "add ed2k://|server|\(server.ip)|\(server.port)|/")
            _ = try Self.amulecmd(namespace, "connect \(server.ip):\(server.port)")
        } catch {
            amuled.stop()
            throw error
        }
        return amuled
    }

    /// A client that asks `endpoint` for an upload slot and 48 ranges of `file`, with a 4 KiB
    /// receive buffer, and then never reads.
    static func slotHog(_ endpoint: Endpoint, file: ED2KSharedFile) -> Int32? {
        guard let fd = tcpConnect(endpoint, fromLoopback: false, receiveBuffer: 4_096) else { return nil }
        var bytes = ClientMessage.startUploadRequest(hash: file.hash).packet().encoded()
        for request in 0..<16 {
            let ranges = (0..<3).map { index -> (start: UInt32, end: UInt32) in
                let start = UInt32((request * 3 + index) * 184_320)
                return (start, start + 184_320)
            }
            bytes += ClientMessage.requestParts(hash: file.hash, ranges: ranges).packet().encoded()
        }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return fd
    }

    /// aMule's known.met: each shared file's ed2k hash and AICH root (its tag 0x27). The format:
    /// a header byte, a record count, then per file the date, the hash, the part hashes and
    /// old-style tags.
    static func knownFiles(_ data: Data) throws -> [[UInt8]: String] {
        var reader = EDonkeyReader(Array(data), offset: 1)
        var files: [[UInt8]: String] = [:]
        let count = try reader.u32("file count")
        for _ in 0..<count {
            _ = try reader.u32("date")
            let hash = try reader.hash("file hash")
            let parts = Int(try reader.u16("part count"))
            _ = try reader.take(parts * 16, "part hashes")
            let tags = try EDonkey.Tag.parseList(&reader)
            files[hash] = tags.string(0x27)
        }
        return files
    }

    /// A blocking TCP connection to `endpoint` (IPv4) with a 10 s receive timeout, from
    /// 127.0.0.1 when `fromLoopback`, with a `receiveBuffer` when given; nil if refused.
    static func tcpConnect(_ endpoint: Endpoint, fromLoopback: Bool = true, receiveBuffer: Int32? = nil)
        -> Int32?
    {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = endpoint.port.bigEndian
        _ = inet_pton(AF_INET, endpoint.ip.description, &target.sin_addr)
        if fromLoopback {
            // From 127.0.0.1: past the per-IP cap that would otherwise refuse all but 16 of
            // them (and the honest PeerStack client on this side's address with them), so what
            // contains them is the cap on connections still handshaking and its eviction.
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Adds `link` to amuled's downloads and waits until `show dl` lists it: an `add` sent just
    /// after amuled connected to its server was sometimes dropped without a log line (1 run in
    /// ~10), so it is sent again, at most three times.
    static func addDownload(_ namespace: Namespace, link: String, hash: [UInt8]) async throws {
        let hex = String(decoding: Multibase.base16Upper.digits(of: hash), as: UTF8.self)
        for _ in 0..<3 {
            _ = try amulecmd(namespace, "add \(link)")
            do {
                return try await until(10, "the download in amuled's list") {
                    try amulecmd(namespace, "show dl").contains(hex)
                }
            } catch {}
        }
        throw Interop.Failure(description: "amuled did not take the link \(link)")
    }

    static func until(_ seconds: Double, _ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw Interop.Failure(description: "no \(what) within \(Int(seconds)) s")
    }
}
