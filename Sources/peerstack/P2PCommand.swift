import ArgumentParser
import Foundation
import Libp2p
import Multiformats
import PeerCrypto

struct P2PCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2p",
        abstract: "A libp2p node: its identity, listening, and ping, identify and streams to other nodes.",
        subcommands: [
            P2PID.self, P2PListen.self, P2PPing.self, P2PIdentify.self, P2PSend.self, P2PCipherRate.self,
        ]
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

    @Option(help: "Security protocols to offer, in order of preference: noise, tls (TLS 1.3).")
    var security: [String] = ["noise", "tls"]

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
            case "tls", "/tls/1.0.0": return SecurityProtocol.tls
            default: throw ValidationError("unknown security protocol '\(name)' (noise, tls)")
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
            // An echo keeps the stream open for writing until all of it is back: some echo
            // servers (go-libp2p's daemon, Kubo's forwarder) end the stream at the sender's FIN.
            if !echo { stream.closeWrite() }
        }
        var received = 0
        var answer: [UInt8] = []
        var mismatch: Int?
        while !echo || received < count, let data = try await stream.read() {
            if echo, mismatch == nil {
                mismatch = Self.firstDifference(data, from: chunk, at: received).map { received + $0 }
            } else if answer.count < 4_096 {
                answer += data.prefix(4_096 - answer.count)
            }
            received += data.count
        }
        try await writer.value
        if echo {
            stream.closeWrite()
            // What follows the echo is its end, or the peer resetting the stream at the FIN.
            if let extra = try? await stream.read(), !extra.isEmpty { received += extra.count }
        }
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
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let last = text.uppercased().last, let unit = units[last] {
            return Int(text.dropLast()).map { $0 * unit }
        }
        return Int(text)
    }
}

struct CipherRateJSON: Codable {
    var bytes: Int
    /// Seconds spent sealing, and opening, the bytes.
    var sealSeconds: Double
    var openSeconds: Double
    /// One core's rate for each: a stream between two nodes runs at most at the lower one.
    var sealBytesPerSecond: Double
    var openBytesPerSecond: Double
}

/// The single-core limit of one Noise-encrypted stream: seals full Noise frames
/// (ChaCha20-Poly1305 from swift-crypto) through ``NoiseTransport``, then opens them, timing
/// each on this thread only.
struct P2PCipherRate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cipher-rate",
        abstract: "Measure one core's Noise transport rate (ChaCha20-Poly1305 seal, and open).",
        shouldDisplay: false)

    @Option(help: "Bytes to seal and open (K, M, G suffixes).")
    var bytes = "1G"

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        guard let count = P2PSend.size(bytes) else {
            throw ValidationError("--bytes: '\(bytes)' is not a size")
        }
        let identity = try PrivateKey.generate()
        var initiator = LibP2PNoiseHandshake(role: .initiator, identity: identity)
        var responder = LibP2PNoiseHandshake(role: .responder, identity: identity)
        try responder.readMessage(try initiator.writeMessage())
        try initiator.readMessage(try responder.writeMessage())
        try responder.readMessage(try initiator.writeMessage())
        let mine = try initiator.split()
        let theirs = try responder.split()
        var sender = NoiseTransport(send: mine.send, receive: mine.receive)
        var receiver = NoiseTransport(send: theirs.send, receive: theirs.receive)
        let frame = [UInt8](repeating: 0x5a, count: NoiseTransport.maxPlaintext)
        let clock = ContinuousClock()
        var sealing = Duration.zero
        var opening = Duration.zero
        var done = 0
        var sealed: [[UInt8]] = []
        while done < count {
            let start = clock.now
            sealed.removeAll(keepingCapacity: true)
            for _ in 0..<64 { sealed.append(try sender.seal(frame)) }
            let middle = clock.now
            for ciphertext in sealed {
                guard try receiver.open(ciphertext).count == frame.count else {
                    throw ValidationError("a frame did not open whole")
                }
            }
            opening += clock.now - middle
            sealing += middle - start
            done += 64 * frame.count
        }
        func seconds(_ duration: Duration) -> Double {
            max(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18, 1e-9)
        }
        let result = CipherRateJSON(
            bytes: done, sealSeconds: seconds(sealing), openSeconds: seconds(opening),
            sealBytesPerSecond: Double(done) / seconds(sealing),
            openBytesPerSecond: Double(done) / seconds(opening))
        if json {
            try printJSON(result)
        } else {
            print(
                "\(Units.bytes(Int64(done))): sealed at \(Units.bytes(Int64(result.sealBytesPerSecond)))/s, opened at \(Units.bytes(Int64(result.openBytesPerSecond)))/s"
            )
        }
    }
}
