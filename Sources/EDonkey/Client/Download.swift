import Crypto
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// Downloads one file from one eDonkey/eMule client, as eMule asks for it: hello, the file's
/// name and part status, its hashset (files of more than one part), an upload slot (waiting
/// in the peer's queue if need be), then parts in requests of three 180 KiB ranges, plain or
/// zlib-packed (`packed` hears of each packed block). Every part is checked against its MD4 (the whole file against the ed2k hash)
/// before the `.part` file is renamed; a part that fails is fetched once more, then the
/// transfer fails with ``Failure/corrupt(part:)`` (the caller bans the peer). Parts already in
/// the `.part` file that match their hash are kept (resume after a restart); the `.part` file
/// stays when the transfer fails.
public enum ED2KDownload {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        case noAnswer(String)
        case refused(String)
        case corrupt(part: Int)

        public var description: String {
            switch self {
            case .noAnswer(let what): "the peer did not answer \(what) in time"
            case .refused(let what): "the peer refused: \(what)"
            case .corrupt(let part): "part \(part) failed its MD4 twice: discarded"
            }
        }
    }

    /// eMule's request unit: three ranges of 180 KiB at a time.
    static let block = 184_320

    public static func fetch(
        hash: [UInt8], size: UInt64, from source: Endpoint, to path: FilePath, userHash: [UInt8],
        ourPort: UInt16,
        server: (ip: UInt32, port: UInt16) = (0, 0), group: any EventLoopGroup,
        timeout: Duration = .seconds(60),
        aich: [UInt8]? = nil,
        progress: @escaping @Sendable (UInt64, UInt64) -> Void = { _, _ in },
        packed: @escaping @Sendable (Int) -> Void = { _ in },
        recovered: @escaping @Sendable (_ part: Int, _ badBlocks: Int) -> Void = { _, _ in }
    ) async throws -> UInt64 {
        let (channel, inbox) = try await connect(to: source, group: group)
        defer { channel.close(promise: nil) }
        func send(_ message: ClientMessage) async throws {
            try await channel.writeAndFlush(ByteBuffer(bytes: message.packet().encoded())).get()
        }
        func wait(
            _ what: String, _ limit: Duration = timeout, _ pick: @escaping @Sendable (ClientMessage) -> Bool
        )
            async throws -> ClientMessage
        {
            guard let message = await inbox.wait(timeout: limit, pick) else { throw Failure.noAnswer(what) }
            if case .noSuchFile = message { throw Failure.refused("it does not have the file") }
            return message
        }

        try await send(
            .hello(
                userHash: userHash, clientID: 0, port: ourPort,
                tags: ClientMessage.helloTags(),
                serverIP: server.ip,
                serverPort: server.port))
        _ = try await wait("the hello") { if case .helloAnswer = $0 { true } else { false } }

        let partCount = Int((size + UInt64(ED2KHasher.partSize) - 1) / UInt64(ED2KHasher.partSize))
        try await send(.requestFileName(hash: hash))
        try await send(.setRequestedFile(hash: hash))
        _ = try await wait("the file request") {
            switch $0 {
            case .fileStatus, .noSuchFile: true
            default: false
            }
        }
        var partHashes: [[UInt8]] = []
        if size >= UInt64(ED2KHasher.partSize) {
            try await send(.hashSetRequest(hash: hash))
            let answer = try await wait("the hashset", timeout) { message in
                switch message {
                case .hashSetAnswer, .noSuchFile: true
                default: false
                }
            }
            guard case .hashSetAnswer(_, let parts) = answer else { throw Failure.noAnswer("the hashset") }
            var top = MD4()
            for part in parts { top.update(part) }
            guard top.finalize() == hash, parts.count >= partCount else {
                throw Failure.refused("a hashset that does not hash to the file's hash")
            }
            partHashes = parts
        }
        let partial = FilePath(path.string + ".part")
        let file = try SystemPackage.FileDescriptor.open(
            partial, .readWrite, options: [.create],
            permissions: [.ownerReadWrite, .groupRead, .otherRead])
        defer { try? file.close() }
        // Resume: parts already in the `.part` file that match their hash are kept.
        var have: Set<Int> = []
        for part in 0..<partCount {
            let start = UInt64(part) * UInt64(ED2KHasher.partSize)
            let end = min(size, start + UInt64(ED2KHasher.partSize))
            if try Self.part(of: file, start, end, hashesTo: partHashes.isEmpty ? hash : partHashes[part]) {
                have.insert(part)
            }
        }
        var done = have.reduce(UInt64(0)) { total, part in
            let start = UInt64(part) * UInt64(ED2KHasher.partSize)
            return total + min(size, start + UInt64(ED2KHasher.partSize)) - start
        }
        progress(done, size)
        if have.count < partCount {
            try await send(.startUploadRequest(hash: hash))
            _ = try await wait("the upload request", .seconds(300)) {
                if case .acceptUpload = $0 { true } else { false }
            }
        }
        var retried: Set<Int> = []
        var part = 0
        while part < partCount {
            if have.contains(part) {
                part += 1
                continue
            }
            let start = UInt64(part) * UInt64(ED2KHasher.partSize)
            let end = min(size, start + UInt64(ED2KHasher.partSize))
            let before = done
            try await fetchRange(
                hash: hash, start: start, end: end, file: file, inbox: inbox, send: send, timeout: timeout,
                onPacked: packed
            ) { received in progress(before + received, size) }
            // Check the part (a single-part file: against the file hash).
            guard try Self.part(of: file, start, end, hashesTo: partHashes.isEmpty ? hash : partHashes[part])
            else {
                guard retried.insert(part).inserted else { throw Failure.corrupt(part: part) }
                // With a trusted AICH root, the peer's recovery data names the bad 180 KiB
                // blocks: only those are fetched again. Without it, the whole part.
                let bad = try await badBlocks(
                    part: part, start: start, end: end, hash: hash, size: size, root: aich, file: file,
                    send: send,
                    wait: wait)
                if let bad { recovered(part, bad.count) }
                // A new upload session: within one, eMule's uploaders (and ours) do not send a
                // range twice.
                try await send(.cancelTransfer)
                try await send(.startUploadRequest(hash: hash))
                _ = try await wait("the upload request", .seconds(300)) {
                    if case .acceptUpload = $0 { true } else { false }
                }
                if let bad {
                    try await fetchBlocks(
                        hash: hash, blocks: bad, file: file, inbox: inbox, send: send, timeout: timeout,
                        onPacked: packed, progress: { _ in })
                    if try Self.part(
                        of: file, start, end, hashesTo: partHashes.isEmpty ? hash : partHashes[part])
                    {
                        done += end - start
                        progress(done, size)
                        part += 1
                    } else {
                        throw Failure.corrupt(part: part)
                    }
                }
                continue
            }
            done += end - start
            progress(done, size)
            part += 1
        }
        try? await send(.cancelTransfer)
        guard ftruncate(file.rawValue, off_t(size)) == 0, rename(partial.string, path.string) == 0 else {
            throw Errno(rawValue: errno)
        }
        return size
    }

    /// The blocks of a part whose SHA-1 differs from the peer's AICH recovery data, once that
    /// data is checked against `root`; nil without a root, or when the peer has none to give.
    static func badBlocks(
        part: Int, start: UInt64, end: UInt64, hash: [UInt8], size: UInt64, root: [UInt8]?,
        file: SystemPackage.FileDescriptor, send: (ClientMessage) async throws -> Void,
        wait: (String, Duration, @escaping @Sendable (ClientMessage) -> Bool) async throws -> ClientMessage
    ) async throws -> [(start: UInt32, end: UInt32)]? {
        guard let root, root.count == 20, size > UInt64(AICHHasher.blockSize), part <= Int(UInt16.max) else {
            return nil
        }
        try await send(.aichRequest(hash: hash, part: UInt16(part), root: root))
        guard
            case .aichAnswer(_, let answered, let answerRoot, let recovery, _) = try? await wait(
                "the AICH recovery data", .seconds(30), { if case .aichAnswer = $0 { true } else { false } }),
            answered == UInt16(part), answerRoot == root,
            let expected = AICHTree.verify(recovery, part: part, size: size, root: root)
        else { return nil }
        var bad: [(start: UInt32, end: UInt32)] = []
        var offset = start
        var buffer = [UInt8](repeating: 0, count: AICHHasher.blockSize)
        for blockHash in expected {
            let count = Int(min(UInt64(AICHHasher.blockSize), end - offset))
            let read = try buffer.withUnsafeMutableBytes {
                try file.read(
                    fromAbsoluteOffset: Int64(offset),
                    into: UnsafeMutableRawBufferPointer(rebasing: $0.prefix(count)))
            }
            if read != count || Array(Insecure.SHA1.hash(data: buffer[0..<count])) != blockHash {
                bad.append((UInt32(offset), UInt32(offset) + UInt32(count)))
            }
            offset += UInt64(count)
        }
        return bad
    }

    /// A connection to a peer whose messages go to an inbox.
    static func connect(to source: Endpoint, group: any EventLoopGroup) async throws -> (
        any Channel, Inbox<ClientMessage>
    ) {
        let inbox = Inbox<ClientMessage>()
        let channel = try await TCPDialer.connect(
            to: source, on: group.next(),
            limits: ConnectionLimits(handshakeTimeout: nil, idleTimeout: .seconds(120))
        ) { channel in
            try channel.pipeline.syncOperations.addHandler(ClientHandler(inbox: inbox))
        }.get()
        return (channel, inbox)
    }

    /// Whether bytes [start, end) of `file` are there and have the MD4 `expected`.
    static func part(
        of file: SystemPackage.FileDescriptor, _ start: UInt64, _ end: UInt64, hashesTo expected: [UInt8]
    )
        throws -> Bool
    {
        var md4 = MD4()
        var offset = start
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while offset < end {
            let count = Int(min(UInt64(buffer.count), end - offset))
            let read = try buffer.withUnsafeMutableBytes {
                try file.read(
                    fromAbsoluteOffset: Int64(offset),
                    into: UnsafeMutableRawBufferPointer(rebasing: $0.prefix(count)))
            }
            guard read > 0 else { return false }
            md4.update(buffer[0..<read])
            offset += UInt64(read)
        }
        return md4.finalize() == expected
    }

    /// Fetches [start, end) in requests of three ranges, writing what arrives.
    static func fetchRange(
        hash: [UInt8], start: UInt64, end: UInt64, file: SystemPackage.FileDescriptor,
        inbox: Inbox<ClientMessage>,
        send: (ClientMessage) async throws -> Void, timeout: Duration, onPacked: (Int) -> Void,
        progress: (UInt64) -> Void
    ) async throws {
        var blocks: [(start: UInt32, end: UInt32)] = []
        var next = start
        while next < end {
            let stop = min(end, next + UInt64(block))
            blocks.append((UInt32(next), UInt32(stop)))
            next = stop
        }
        try await fetchBlocks(
            hash: hash, blocks: blocks, file: file, inbox: inbox, send: send, timeout: timeout,
            onPacked: onPacked,
            progress: progress)
    }

    /// Fetches `blocks` (each at most 180 KiB) three to a request, writing what arrives.
    static func fetchBlocks(
        hash: [UInt8], blocks: [(start: UInt32, end: UInt32)], file: SystemPackage.FileDescriptor,
        inbox: Inbox<ClientMessage>,
        send: (ClientMessage) async throws -> Void, timeout: Duration, onPacked: (Int) -> Void,
        progress: (UInt64) -> Void
    ) async throws {
        var received: UInt64 = 0
        var queue = blocks[...]
        while !queue.isEmpty {
            let ranges = Array(queue.prefix(3))
            queue = queue.dropFirst(3)
            try await send(.requestParts(hash: hash, ranges: ranges))
            var missing = ranges.reduce(UInt64(0)) { $0 + UInt64($1.end - $1.start) }
            var packed: [UInt32: (length: UInt32, data: [UInt8])] = [:]
            while missing > 0 {
                guard
                    let message = await inbox.wait(
                        timeout: timeout,
                        {
                            switch $0 {
                            case .sendingPart, .compressedPart, .cancelTransfer, .outOfPartRequests: true
                            default: false
                            }
                        })
                else { throw Failure.noAnswer("a part request") }
                switch message {
                case .sendingPart(_, let from, _, let data):
                    try write(data, at: UInt64(from), file: file, within: ranges)
                    missing -= UInt64(data.count)
                    received += UInt64(data.count)
                case .compressedPart(_, let from, let length, let data):
                    var entry = packed[from] ?? (length, [])
                    entry.data += data
                    guard entry.data.count < Int(length) else {
                        packed[from] = nil
                        let plain = try EDonkeyPacket.inflate(entry.data, limit: block)
                        onPacked(plain.count)
                        try write(plain, at: UInt64(from), file: file, within: ranges)
                        missing -= UInt64(plain.count)
                        received += UInt64(plain.count)
                        break
                    }
                    packed[from] = entry
                case .cancelTransfer, .outOfPartRequests:
                    throw Failure.refused("the upload slot was ended")
                default:
                    break
                }
                progress(received)
            }
        }
    }

    static func write(
        _ data: [UInt8], at offset: UInt64, file: SystemPackage.FileDescriptor,
        within ranges: [(start: UInt32, end: UInt32)]
    )
        throws
    {
        guard
            ranges.contains(where: {
                UInt64($0.start) <= offset && offset + UInt64(data.count) <= UInt64($0.end)
            })
        else { throw Failure.refused("a block nobody asked for (\(offset), \(data.count) bytes)") }
        _ = try data.withUnsafeBytes { try file.writeAll(toAbsoluteOffset: Int64(offset), $0) }
    }
}

final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let inbox: Inbox<ClientMessage>
    private var framer = EDonkeyFramer(maxSize: 512 * 1024, maxUnpacked: 2 << 20, unpackedProtocol: .emule)

    init(inbox: Inbox<ClientMessage>) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(Array(unwrapInboundIn(data).readableBytesView))
        do {
            while let packet = try framer.next() { inbox.deliver(try ClientMessage(packet)) }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.close()
        context.fireChannelInactive()
    }
}

extension ED2KDownload {
    /// What ``fetch(hash:size:sources:server:to:userHash:group:rounds:progress:note:)`` tells as
    /// it goes.
    public enum Note: Sendable {
        case trying(Endpoint)
        case failed(Endpoint, any Error)
        case banned(Endpoint, part: Int)
        case skippedLowID(UInt32)
    }

    /// Fetches a file from whichever source delivers it: the `sources` given (a link's) and
    /// those `server` names (asked again each round). A source that fails is tried again next
    /// round; one whose data fails a part's MD4 twice is banned for good. The `.part` file
    /// carries verified parts from one source (and one run) to the next.
    public static func fetch(
        hash: [UInt8], size: UInt64, sources: [Endpoint], server: ED2KServerSession?, to path: FilePath,
        userHash: [UInt8], group: any EventLoopGroup, aich: [UInt8]? = nil, rounds: Int = 3,
        roundPause: Duration = .seconds(10),
        progress: @escaping @Sendable (UInt64, UInt64) -> Void = { _, _ in },
        note: @escaping @Sendable (Note) -> Void = { _ in }
    ) async throws -> UInt64 {
        var banned: Set<Endpoint> = []
        var lastError: (any Error)?
        for round in 0..<max(1, rounds) {
            if round > 0 { try await Task.sleep(for: roundPause) }
            var candidates = sources
            if let server {
                for source in (try? await server.sources(of: hash, size: size)) ?? [] {
                    guard source.id >= 1 << 24 else {
                        note(.skippedLowID(source.id))
                        continue
                    }
                    if let endpoint = Endpoint(
                        ip: ServerState.address(ofHighID: source.id), port: source.port)
                    {
                        candidates.append(endpoint)
                    }
                }
            }
            var seen: Set<Endpoint> = []
            for source in candidates where !banned.contains(source) && seen.insert(source).inserted {
                note(.trying(source))
                do {
                    return try await fetch(
                        hash: hash, size: size, from: source, to: path, userHash: userHash, ourPort: 0,
                        group: group, aich: aich, progress: progress)
                } catch Failure.corrupt(let part) {
                    banned.insert(source)
                    note(.banned(source, part: part))
                    lastError = Failure.corrupt(part: part)
                } catch {
                    note(.failed(source, error))
                    lastError = error
                }
            }
        }
        throw lastError ?? Failure.noAnswer("any source (none known)")
    }
}

extension ED2KDownload {
    /// Asks `source` for the AICH recovery data of `part` (OP_AICHREQUEST) and checks it against
    /// `root`: the part's 180 KiB block hashes, in order. Throws when the peer has none or its
    /// data does not hash to the root.
    public static func recoveryData(
        hash: [UInt8], size: UInt64, part: Int, root: [UInt8], from source: Endpoint, userHash: [UInt8],
        group: any EventLoopGroup, timeout: Duration = .seconds(30)
    ) async throws -> [[UInt8]] {
        let (channel, inbox) = try await connect(to: source, group: group)
        defer { channel.close(promise: nil) }
        func send(_ message: ClientMessage) async throws {
            try await channel.writeAndFlush(ByteBuffer(bytes: message.packet().encoded())).get()
        }
        try await send(
            .hello(
                userHash: userHash, clientID: 0, port: 0, tags: ClientMessage.helloTags(), serverIP: 0,
                serverPort: 0))
        guard await inbox.wait(timeout: timeout, { if case .helloAnswer = $0 { true } else { false } }) != nil
        else {
            throw Failure.noAnswer("the hello")
        }
        try await send(.setRequestedFile(hash: hash))
        try await send(.aichRequest(hash: hash, part: UInt16(clamping: part), root: root))
        guard
            case .aichAnswer(_, let answered, let answerRoot, let recovery, _) = await inbox.wait(
                timeout: timeout, { if case .aichAnswer = $0 { true } else { false } })
        else { throw Failure.noAnswer("the AICH request") }
        guard !answerRoot.isEmpty else { throw Failure.refused("no AICH recovery data for part \(part)") }
        guard answered == UInt16(clamping: part), answerRoot == root,
            let blocks = AICHTree.verify(recovery, part: part, size: size, root: root)
        else { throw Failure.refused("AICH recovery data that does not hash to the root") }
        return blocks
    }
}
