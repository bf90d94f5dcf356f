import ArgumentParser
import Foundation
import Gossip
import Libp2p
import Multiformats
import PeerCrypto

struct PubSubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubsub",
        abstract: "libp2p publish/subscribe over GossipSub v1.1 (with floodsub peers served too).",
        subcommands: [PubSubSub.self, PubSubPub.self]
    )
}

/// What `pubsub sub` and `pubsub pub` share: the node's identity, addresses and peers.
struct PubSubOptions: ParsableArguments {
    @Option(help: "The node's identity file (default: a new Ed25519 key for this run only).")
    var identity: String?

    @Option(help: "Key type of a new identity: ed25519, ecdsa, secp256k1 or rsa.")
    var keyType: KeyType = .ed25519

    @Option(help: "A peer to connect to, as /ip4/…/tcp/…/p2p/<peer ID> (repeatable).")
    var peer: [Multiaddr] = []

    @Option(help: "An address to listen on (repeatable; port 0: any free port).")
    var listen: [Multiaddr] = []

    @Option(help: "Message signing: strict-sign (every message signed, the default) or strict-no-sign.")
    var signing: String = "strict-sign"

    @Flag(help: "Speak only /floodsub/1.0.0.")
    var floodsub = false

    func configuration() throws -> GossipSubConfiguration {
        var configuration = floodsub ? GossipSubConfiguration.floodsub : GossipSubConfiguration()
        switch signing {
        case "strict-sign": configuration.signaturePolicy = .strictSign
        case "strict-no-sign": configuration.signaturePolicy = .strictNoSign
        default: throw ValidationError("--signing: strict-sign or strict-no-sign, not '\(signing)'")
        }
        return configuration
    }

    /// A host listening where asked and a started pubsub service, connected to `--peer`s.
    func start() async throws -> (Libp2pHost, GossipSubService) {
        let key: PrivateKey
        if let identity {
            key = try IdentityFile.loadOrCreate(identity, type: keyType).0
        } else {
            key = try PrivateKey.generate(keyType)
        }
        let host = Libp2pHost(identity: key, log: { Terminal.status($0) })
        let service = GossipSubService(
            host: host, configuration: try configuration(), log: { Terminal.status($0) })
        await service.start()
        for address in listen {
            do {
                try await host.listen(address)
            } catch {
                throw Terminal.badInput("--listen \(address)", "\(error)")
            }
        }
        if !listen.isEmpty {
            let lines = host.listenAddresses.map { "listening on \($0)\n" }.joined()
            FileHandle.standardError.write(Data(lines.utf8))
        }
        for address in peer {
            do {
                let connection = try await host.connect(address)
                Terminal.status("connected to \(connection.remotePeer)")
            } catch {
                Terminal.error("\(address): \(error)")
            }
        }
        return (host, service)
    }
}

struct MessageJSON: Codable {
    var topic: String
    var data: String
    var dataBase64: String
    var from: String?
    var seqno: String?
    var receivedFrom: String
    var id: String
}

struct PubSubSub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sub",
        abstract: "Subscribe to a topic and print each message as it arrives, until Ctrl-C.")

    @OptionGroup var options: PubSubOptions

    @Argument(help: "The topic.")
    var topic: String

    @Option(help: "Stop after this many messages.")
    var count: Int?

    @Flag(help: "Print each message as a JSON line (author, seqno, data as text and base64).")
    var json = false

    @Flag(help: "Also publish each line read from standard input to the topic.")
    var stdin = false

    func run() async throws {
        let (host, service) = try await options.start()
        let messages = await service.subscribe(topic)
        FileHandle.standardError.write(Data("subscribed to \(topic) as \(host.peerID)\n".utf8))
        let stop = Task {
            let interrupts = AsyncStream<Void>.makeStream()
            let sources = Terminal.onInterrupt { interrupts.continuation.finish() }
            for await _ in interrupts.stream {}
            _ = sources
        }
        let reader = Task {
            var seen = 0
            for await delivery in messages {
                let message = delivery.message
                if json {
                    let line = MessageJSON(
                        topic: message.topic, data: String(decoding: message.data, as: UTF8.self),
                        dataBase64: Data(message.data).base64EncodedString(),
                        from: delivery.author.map { "\($0)" }, seqno: message.seqno.map { hexString($0) },
                        receivedFrom: "\(delivery.receivedFrom)", id: hexString(delivery.id))
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    FileHandle.standardOutput.write(try encoder.encode(line) + Data("\n".utf8))
                } else {
                    FileHandle.standardOutput.write(Data(message.data + [10]))
                }
                seen += 1
                if let count, seen >= count { return }
            }
        }
        let publisher = Task {
            guard stdin else { return }
            // Standard input is read on a thread of its own: readLine blocks.
            let lines = AsyncStream<String> { continuation in
                Thread {
                    while let line = readLine() { continuation.yield(line) }
                    continuation.finish()
                }.start()
            }
            for await line in lines {
                do {
                    try await service.publish(Array(line.utf8), topic: topic)
                } catch {
                    Terminal.error("publishing '\(line)': \(error)")
                }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await reader.value }
            group.addTask { await stop.value }
            await group.next()
            group.cancelAll()
            reader.cancel()
            stop.cancel()
            publisher.cancel()
        }
        await service.stop()
        await host.close()
    }
}

struct PubSubPub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pub",
        abstract: "Publish one message on a topic to the peers given, then exit.")

    @OptionGroup var options: PubSubOptions

    @Argument(help: "The topic.")
    var topic: String

    @Argument(help: "The message (UTF-8 text).")
    var message: String

    @Option(help: "Seconds to wait for a peer that subscribes to the topic.")
    var wait: Double = 10

    @Option(help: "Subscribed peers to wait for before publishing.")
    var subscribers = 1

    func run() async throws {
        let (host, service) = try await options.start()
        let ready = await service.waitForPeers(
            in: topic, count: subscribers, timeout: .milliseconds(Int64(wait * 1_000)))
        if !ready {
            Terminal.status("no peer subscribed to \(topic) within \(wait) s; publishing anyway")
        }
        do {
            let id = try await service.publish(Array(message.utf8), topic: topic)
            Terminal.status("published \(hexString(id)) to \(await service.peers(in: topic).count) peer(s)")
        } catch {
            throw Terminal.badInput("the message", "\(error)")
        }
        await service.flush(timeout: .seconds(5))
        // Give the last frames a moment on the wire before the connections close.
        try? await Task.sleep(for: .milliseconds(200))
        await service.stop()
        await host.close()
    }
}

private func hexString(_ bytes: [UInt8]) -> String {
    String(decoding: Multibase.base16.digits(of: bytes), as: UTF8.self)
}
