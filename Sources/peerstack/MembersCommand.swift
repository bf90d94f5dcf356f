import ArgumentParser
import Foundation
import Gossip
import PeerNet

struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract:
            "SWIM cluster membership as HashiCorp's memberlist speaks it (serf, Consul and Nomad are peers).",
        subcommands: [MembersJoin.self, MembersList.self]
    )
}

extension Endpoint: ExpressibleByArgument {
    public init?(argument: String) {
        guard let endpoint = try? Endpoint(parsing: argument, defaultPort: 7946) else { return nil }
        self = endpoint
    }
}

/// What both subcommands need to speak to a cluster: its key and framing.
struct MembersFramingOptions: ParsableArguments {
    @Option(help: "The cluster's encryption key, base64 (serf's -encrypt; 16, 24 or 32 bytes).")
    var encrypt: String?

    @Flag(help: "Send packets and streams uncompressed (serf compresses by default).")
    var noCompression = false

    func framing() throws -> MemberlistFraming {
        var framing = MemberlistFraming(compression: !noCompression)
        if let encrypt {
            do {
                framing.keyring = try MemberlistKeyring(base64: encrypt)
            } catch {
                throw Terminal.badInput("--encrypt", error)
            }
        }
        return framing
    }
}

struct MembersJoin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Run a member until Ctrl-C (then leave gracefully), joining through the members given.",
        discussion: """
            Membership changes are printed as they happen: joined, suspect, failed, left. With no \
            address, the member starts a cluster of its own that others join.
            """)

    @Argument(help: "Members to join through, host:port (default port 7946).")
    var seeds: [Endpoint] = []

    @Option(help: "This member's name (default: the host name and port).")
    var name: String?

    @Option(help: "Where to listen, UDP and TCP (serf's -bind).")
    var listen: Endpoint = Endpoint(ip: .loopbackV4, port: 7946)

    @Option(help: "The address others reach this member at (default: the listening address).")
    var advertise: Endpoint?

    @Option(help: "A tag, key=value, as serf's -tag (repeatable).")
    var tag: [String] = []

    @OptionGroup var framingOptions: MembersFramingOptions

    @Flag(help: "Print membership changes as JSON lines.")
    var json = false

    func run() async throws {
        let memberName = name ?? "\(ProcessInfo.processInfo.hostName)-\(listen.port)"
        var configuration = SWIMConfiguration(name: memberName, advertise: advertise ?? listen)
        // A member must be reachable at the address it announces.
        if configuration.advertise.ip.isUnspecified { configuration.advertise.ip = .loopbackV4 }
        var tags: [String: String] = [:]
        for pair in tag {
            guard let equals = pair.firstIndex(of: "=") else {
                throw Terminal.badInput("--tag \(pair)", "expected key=value")
            }
            tags[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        configuration.meta = SerfTags.encode(tags)
        guard configuration.meta.count <= 512 else {
            throw Terminal.badInput("--tag", "the tags exceed 512 bytes")
        }
        var options = MembershipService.Options(configuration: configuration, listen: listen)
        options.framing = try framingOptions.framing()
        let service: MembershipService
        do {
            service = try await MembershipService.start(options)
        } catch {
            throw Terminal.badInput("--listen \(listen)", "\(error)")
        }
        FileHandle.standardError.write(Data("listening on \(service.localAddress) as \(memberName)\n".utf8))
        let printer = Task {
            for await event in service.events { Self.print(event, json: json) }
        }
        if !seeds.isEmpty {
            let answered = await service.join(seeds)
            if answered == 0 {
                Terminal.error("no member answered at \(seeds.map(\.description).joined(separator: ", "))")
                await service.shutdown()
                throw ExitCode(1)
            }
            FileHandle.standardError.write(Data("joined through \(answered) of \(seeds.count)\n".utf8))
        }
        let interrupts = AsyncStream<Void>.makeStream()
        let sources = Terminal.onInterrupt { interrupts.continuation.finish() }
        for await _ in interrupts.stream {}
        _ = sources
        FileHandle.standardError.write(Data("leaving\n".utf8))
        await service.leave()
        await service.shutdown()
        printer.cancel()
    }

    static func print(_ event: MembershipEvent, json: Bool) {
        let (kind, record): (String, MemberRecord) =
            switch event {
            case .joined(let record): ("joined", record)
            case .updated(let record): ("updated", record)
            case .suspected(let record): ("suspect", record)
            case .failed(let record): ("failed", record)
            case .left(let record): ("left", record)
            }
        if json {
            let line = MemberJSON(
                event: kind, name: record.name, address: "\(record.endpoint)", state: "\(record.state)",
                incarnation: record.incarnation)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            FileHandle.standardOutput.write(((try? encoder.encode(line)) ?? Data()) + Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data("\(kind) \(record.name) \(record.endpoint)\n".utf8))
        }
    }
}

struct MemberJSON: Codable {
    var event: String?
    var name: String
    var address: String
    var state: String
    var incarnation: UInt32
    var tags: [String: String]? = nil
}

struct MembersList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print a running member's view: name, address, state (alive, suspect, failed, left).",
        discussion: """
            Asks the member at --listen over memberlist's own TCP push-pull, as an observer that \
            joins nothing; works with serf agents and any memberlist member too.
            """)

    @Option(help: "The running member's address.")
    var listen: Endpoint = Endpoint(ip: .loopbackV4, port: 7946)

    @OptionGroup var framingOptions: MembersFramingOptions

    @Flag(help: "Print a JSON array.")
    var json = false

    func run() async throws {
        let framing = try framingOptions.framing()
        guard
            let view = await MembershipService.exchange(
                PushPull(join: false, nodes: []), with: listen, framing: framing)
        else {
            Terminal.error("no member answered at \(listen)")
            throw ExitCode(1)
        }
        let rows = view.nodes.sorted { $0.name < $1.name }.map { node in
            MemberJSON(
                event: nil, name: node.name,
                address: Endpoint(ip: node.address, port: node.port).map(\.description) ?? "?",
                state: "\(node.state)",
                incarnation: node.incarnation)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            FileHandle.standardOutput.write(try encoder.encode(rows) + Data("\n".utf8))
            return
        }
        let width = max(4, rows.map(\.name.count).max() ?? 0)
        let addressWidth = max(7, rows.map(\.address.count).max() ?? 0)
        for row in rows {
            let line =
                row.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + row.address.padding(toLength: addressWidth, withPad: " ", startingAt: 0) + "  "
                + row.state.padding(toLength: 7, withPad: " ", startingAt: 0) + "  "
                + (row.tags ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                    separator: ",")
            let trimmed = line.reversed().drop { $0 == " " }.reversed()
            FileHandle.standardOutput.write(Data((String(trimmed) + "\n").utf8))
        }
    }
}
