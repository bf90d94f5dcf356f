import ArgumentParser
import Foundation
import Libp2p
import Multiformats
import PeerCrypto

struct P2PCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2p",
        abstract: "A libp2p node: its identity, listening, and ping, identify and streams to other nodes.",
        subcommands: [P2PID.self, P2PListen.self, P2PPing.self, P2PIdentify.self, P2PSend.self]
    )
}

extension KeyType: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument.lowercased() {
        case "ed25519": self = .ed25519
        case "ecdsa", "p256", "p-256": self = .ecdsa
        case "secp256k1": self = .secp256k1
        case "rsa": self = .rsa
        default: return nil
        }
    }

    public static var allValueStrings: [String] { ["ed25519", "ecdsa", "secp256k1", "rsa"] }
}

extension Multiaddr: ExpressibleByArgument {
    public init?(argument: String) {
        guard let address = try? Multiaddr(argument) else { return nil }
        self = address
    }
}

struct P2POptions: ParsableArguments {
    @Option(
        help: "The node's identity file (default: ~/.peerstack/identity; created on first use, mode 0600).")
    var identity: String?

    @Option(help: "Key type of a new identity: ed25519, ecdsa, secp256k1 or rsa.")
    var keyType: KeyType = .ed25519

    @Option(help: "Security protocols to offer, in order: noise.")
    var security: [String] = ["noise"]

    @Flag(help: "Print JSON.")
    var json = false

    static let defaultListen = Multiaddr([.ip4([127, 0, 0, 1]), .tcp(4001)])

    var identityPath: String {
        if let identity { return identity }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "."
        return home + "/.peerstack/identity"
    }

    func key() throws -> PrivateKey {
        let (key, created) = try IdentityFile.loadOrCreate(identityPath, type: keyType)
        if created { Terminal.status("created the identity \(key.publicKey.peerID) in \(identityPath)") }
        return key
    }

    func host() throws -> Libp2pHost {
        var configuration = Libp2pHost.Configuration()
        configuration.security = try security.map { name in
            switch name.lowercased() {
            case "noise", "/noise": return SecurityProtocol.noise
            default: throw ValidationError("unknown security protocol '\(name)' (noise)")
            }
        }
        return Libp2pHost(identity: try key(), configuration: configuration, log: { Terminal.status($0) })
    }
}

struct IDJSON: Codable {
    var id: String
    var cid: String
    var keyType: String
    var publicKey: String
    var addresses: [String]
}

struct P2PID: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "id", abstract: "Show this node's peer ID, key type and listen addresses.")

    @OptionGroup var options: P2POptions

    @Option(help: "The addresses `p2p listen` would listen on.")
    var listen: [Multiaddr] = [P2POptions.defaultListen]

    func run() async throws {
        let key = try options.key()
        let id = key.publicKey.peerID
        let addresses = listen.map { "\($0)/p2p/\(id)" }
        if options.json {
            try printJSON(
                IDJSON(
                    id: "\(id)", cid: "\(id.cid)", keyType: "\(key.type)",
                    publicKey: Data(key.publicKey.encoded.bytes).base64EncodedString(), addresses: addresses))
        } else {
            print("peer ID   \(id)")
            print("key type  \(key.type)")
            print("CID       \(id.cid)")
            for address in addresses { print("address   \(address)") }
        }
    }
}

struct P2PListen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Run a libp2p node until Ctrl-C: identify and ping, and the test protocols asked for.")

    @OptionGroup var options: P2POptions

    @Option(help: "Address to listen on (repeatable; port 0: any free port).")
    var listen: [Multiaddr] = [P2POptions.defaultListen]

    @Option(help: "Also serve this protocol by echoing each stream back (repeatable).")
    var echo: [String] = []

    @Option(
        help: "Also serve this protocol by reading each stream to its end and answering with the byte count.")
    var discard: [String] = []

    @Option(help: "Dial these peers once listening (repeatable).")
    var connect: [Multiaddr] = []

    func run() async throws {
        let host = try options.host()
        for name in echo {
            host.handle(name) { stream in
                while let chunk = try await stream.read() { try await stream.write(chunk) }
                stream.closeWrite()
            }
        }
        for name in discard {
            host.handle(name) { stream in
                var count: UInt64 = 0
                while let chunk = try await stream.read() { count += UInt64(chunk.count) }
                try await stream.write(Array("\(count)\n".utf8))
                stream.closeWrite()
            }
        }
        for address in listen {
            do {
                try await host.listen(address)
            } catch {
                throw Terminal.badInput("--listen \(address)", "\(error)")
            }
        }
        // One write, so that a program reading the pipe sees whole lines at once.
        let lines = host.listenAddresses.map { "listening on \($0)\n" }.joined()
        FileHandle.standardOutput.write(Data(lines.utf8))
        for address in connect {
            do {
                let connection = try await host.connect(address)
                Terminal.status("connected to \(connection)")
            } catch {
                Terminal.error("\(address): \(error)")
            }
        }
        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        for await _ in stop.stream {}
        Terminal.status("stopping")
        await host.close()
    }
}

struct PingJSON: Codable {
    var peer: String
    var rttMilliseconds: [Double]
}

struct P2PPing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping", abstract: "Ping a libp2p node (/ipfs/ping/1.0.0) and print the round-trip times."
    )

    @OptionGroup var options: P2POptions

    @Argument(help: "The node, as /ip4/…/tcp/…/p2p/<peer ID>.")
    var address: Multiaddr

    @Option(name: .shortAndLong, help: "Pings to send.")
    var count = 3

    func run() async throws {
        let host = try options.host()
        defer { Task { await host.close() } }
        let connection = try await host.connect(address)
        let times = try await host.ping(connection, count: max(1, count))
        let milliseconds = times.map {
            Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1e3
        }
        if options.json {
            try printJSON(PingJSON(peer: "\(connection.remotePeer)", rttMilliseconds: milliseconds))
        } else {
            for time in milliseconds {
                print("pong from \(connection.remotePeer): \(String(format: "%.3f", time)) ms")
            }
        }
        await host.close()
    }
}

struct IdentifyJSON: Codable {
    var peer: String
    var keyType: String
    var security: String
    var muxer: String
    var agentVersion: String?
    var protocolVersion: String?
    var protocols: [String]
    var listenAddresses: [String]
    var observedAddress: String?
}

struct P2PIdentify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identify",
        abstract: "Ask a libp2p node who it is (/ipfs/id/1.0.0): agent, protocols, addresses, key type.")

    @OptionGroup var options: P2POptions

    @Argument(help: "The node, as /ip4/…/tcp/…/p2p/<peer ID>.")
    var address: Multiaddr

    func run() async throws {
        let host = try options.host()
        let connection = try await host.connect(address)
        let info = try await host.identify(connection)
        let result = IdentifyJSON(
            peer: "\(connection.remotePeer)", keyType: "\(connection.remoteKey.type)",
            security: connection.security.rawValue, muxer: connection.muxer, agentVersion: info.agentVersion,
            protocolVersion: info.protocolVersion, protocols: info.protocols,
            listenAddresses: info.listenAddresses.map(\.description),
            observedAddress: info.observedAddress?.description)
        await host.close()
        if options.json {
            try printJSON(result)
            return
        }
        print("peer        \(result.peer)")
        print("key type    \(result.keyType)")
        print("connection  \(result.security), \(result.muxer)")
        print("agent       \(result.agentVersion ?? "-")")
        print("protocol    \(result.protocolVersion ?? "-")")
        for address in result.listenAddresses { print("listens on  \(address)") }
        if let observed = result.observedAddress { print("sees us at  \(observed)") }
        for name in result.protocols { print("protocol    \(name)") }
    }
}

struct SendJSON: Codable {
    var peer: String
    var `protocol`: String
    var bytes: Int
    var seconds: Double
    var bytesPerSecond: Double
    var answer: String?
}

struct P2PSend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send bytes over one stream: check an echo, or time a one-way transfer.",
        discussion:
            "With --echo the node must echo the stream (as `p2p listen --echo`); otherwise its answer after the stream ends is printed."
    )

    @OptionGroup var options: P2POptions

    @Argument(help: "The node, as /ip4/…/tcp/…/p2p/<peer ID>.")
    var address: Multiaddr

    @Option(help: "The stream's protocol.")
    var `protocol`: String

    @Option(help: "Bytes to send (suffixes K, M, G: KiB, MiB, GiB).")
    var bytes = "16M"

    @Flag(help: "Expect every byte back, in order, and check it.")
    var echo = false

    func run() async throws {
        guard let count = Self.size(bytes) else { throw ValidationError("--bytes: '\(bytes)' is not a size") }
        let host = try options.host()
        let connection = try await host.connect(address)
        let stream = try await connection.openStream([`protocol`])
        let chunk = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let clock = ContinuousClock()
        let start = clock.now
        let writer = Task {
            var sent = 0
            while sent < count {
                let size = min(chunk.count, count - sent)
                try await stream.write(size == chunk.count ? chunk : Array(chunk.prefix(size)))
                sent += size
            }
            stream.closeWrite()
        }
        var received = 0
        var answer: [UInt8] = []
        var mismatch: Int?
        while let data = try await stream.read() {
            if echo, mismatch == nil {
                mismatch = Self.firstDifference(data, from: chunk, at: received).map { received + $0 }
            } else if answer.count < 4_096 {
                answer += data.prefix(4_096 - answer.count)
            }
            received += data.count
        }
        try await writer.value
        let seconds =
            Double((clock.now - start).components.attoseconds) / 1e18
            + Double((clock.now - start).components.seconds)
        await host.close()
        if echo {
            if let mismatch { throw ValidationError("the echo differs at byte \(mismatch)") }
            guard received == count else {
                throw ValidationError("the echo has \(received) bytes, not \(count)")
            }
        }
        let result = SendJSON(
            peer: "\(connection.remotePeer)", protocol: `protocol`, bytes: count, seconds: seconds,
            bytesPerSecond: Double(count) / max(seconds, 1e-9),
            answer: echo
                ? nil
                : String(decoding: answer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        if options.json {
            try printJSON(result)
        } else {
            print(
                "\(Units.bytes(Int64(count))) \(echo ? "echoed" : "sent") in \(String(format: "%.2f", seconds)) s "
                    + "(\(Units.bytes(Int64(result.bytesPerSecond)))/s)")
            if let answer = result.answer, !answer.isEmpty { print("answer: \(answer)") }
        }
    }

    /// Where `data` differs from `pattern` repeated, read from `offset` on (memcmp a piece at a
    /// time, then the byte within the piece).
    static func firstDifference(_ data: [UInt8], from pattern: [UInt8], at offset: Int) -> Int? {
        var index = 0
        while index < data.count {
            let start = (offset + index) % pattern.count
            let length = min(pattern.count - start, data.count - index)
            let same = data.withUnsafeBytes { got in
                pattern.withUnsafeBytes { want in
                    memcmp(got.baseAddress! + index, want.baseAddress! + start, length) == 0
                }
            }
            if !same {
                return (0..<length).first { data[index + $0] != pattern[start + $0] }.map { index + $0 }
            }
            index += length
        }
        return nil
    }

    static func size(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.uppercased().last, let unit = units[last] {
            return Int(text.dropLast()).map { $0 * unit }
        }
        return Int(text)
    }
}
