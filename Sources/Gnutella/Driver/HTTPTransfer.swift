import Crypto
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// An HTTP request for a shared file, as Gnutella servents send them: `GET /get/<index>/<name>`
/// or `GET /uri-res/N2R?urn:sha1:<base32>`, with an optional single `Range: bytes=a-b`.
public struct TransferRequest: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case index(UInt32, name: String)
        case sha1([UInt8])
    }

    public var method: String
    public var target: Target
    /// First and last byte wanted (inclusive); nil: the whole file. A missing end is open.
    public var range: (start: UInt64, end: UInt64?)?
    /// Other servents with the file (`X-Alt`), from the downloader.
    public var alternates: [Endpoint] = []

    public static func == (a: TransferRequest, b: TransferRequest) -> Bool {
        a.method == b.method && a.target == b.target && a.range?.start == b.range?.start
            && a.range?.end == b.range?.end
    }

    public init(method: String = "GET", target: Target, range: (start: UInt64, end: UInt64?)? = nil) {
        self.method = method
        self.target = target
        self.range = range
    }

    /// Parses a request's head (request line and headers, up to the blank line).
    public static func parse(_ message: HandshakeMessage) throws(GnutellaError) -> TransferRequest {
        let parts = message.startLine.split(separator: " ")
        guard parts.count == 3, parts[0] == "GET" || parts[0] == "HEAD", parts[2].hasPrefix("HTTP/1.") else {
            throw .invalid(field: "request line", offset: 0, reason: String(message.startLine.prefix(80)))
        }
        let path = String(parts[1])
        let target: Target
        if path.hasPrefix("/uri-res/N2R?") {
            guard let hash = SHA1URN.parse(String(path.dropFirst("/uri-res/N2R?".count))) else {
                throw .invalid(field: "request URN", offset: 0, reason: "not urn:sha1")
            }
            target = .sha1(hash)
        } else if path.hasPrefix("/get/") {
            let rest = path.dropFirst("/get/".count)
            guard let slash = rest.firstIndex(of: "/"), let index = UInt32(rest[..<slash]) else {
                throw .invalid(field: "request path", offset: 0, reason: "not /get/<index>/<name>")
            }
            target = .index(index, name: percentDecoded(String(rest[rest.index(after: slash)...])))
        } else {
            throw .invalid(field: "request path", offset: 0, reason: String(path.prefix(80)))
        }
        var request = TransferRequest(method: String(parts[0]), target: target)
        if let range = message["Range"] {
            request.range = try parseRange(range)
        }
        request.alternates = AlternateLocations.parse(message["X-Alt"])
        return request
    }

    static func parseRange(_ text: String) throws(GnutellaError) -> (UInt64, UInt64?) {
        let value = text.trimmingSpaces().lowercased()
        guard value.hasPrefix("bytes="), !value.contains(",") else {
            throw .invalid(field: "Range", offset: 0, reason: text)
        }
        let spec = value.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2, let start = UInt64(spec[0].trimmingSpaces()) else {
            throw .invalid(field: "Range", offset: 0, reason: text)
        }
        let endText = spec[1].trimmingSpaces()
        if endText.isEmpty { return (start, nil) }
        guard let end = UInt64(endText), end >= start else {
            throw .invalid(field: "Range", offset: 0, reason: text)
        }
        return (start, end)
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The request's bytes, for a downloader.
    public func encoded(host: String, userAgent: String) -> [UInt8] {
        let path: String =
            switch target {
            case .sha1(let hash): "/uri-res/N2R?" + SHA1URN.string(hash)
            case .index(let index, let name):
                "/get/\(index)/"
                    + name.utf8.map { byte in
                        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                            || byte == 0x2E
                            || byte == 0x2D || byte == 0x5F
                            ? String(UnicodeScalar(byte))
                            : "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
                    }.joined()
            }
        var text =
            "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: \(userAgent)\r\nConnection: close\r\n"
        if let range { text += "Range: bytes=\(range.start)-\(range.end.map(String.init) ?? "")\r\n" }
        if !alternates.isEmpty {
            text += "X-Alt: \(alternates.prefix(20).map(\.description).joined(separator: ","))\r\n"
        }
        return Array((text + "\r\n").utf8)
    }
}

/// Serves one HTTP upload of a shared file: 200 or 206 with `Content-Range`,
/// `X-Gnutella-Content-URN`, then the bytes from disk a chunk at a time while the socket takes
/// them (a reader that never reads holds one chunk); 404 for what is not shared, 416 for a
/// range past the end, 503 when all upload slots are busy. One request per connection.
final class UploadHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let node: GnutellaNode
    private var head: [UInt8] = []
    private var file: SystemPackage.FileDescriptor?
    private var position: UInt64 = 0
    private var end: UInt64 = 0
    private var sent: Int64 = 0
    private var name = ""
    private var counted = false
    static let chunk = 64 * 1024

    /// Sent first on a connection we opened to answer a Push (the GIV line).
    let greeting: [UInt8]

    init(node: GnutellaNode, greeting: [UInt8] = []) {
        self.node = node
        self.greeting = greeting
    }

    func channelActive(context: ChannelHandlerContext) {
        if !greeting.isEmpty {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: greeting)), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard file == nil else { return }
        head += unwrapInboundIn(data).readableBytesView
        do {
            guard let (message, _) = try HandshakeMessage.parseHTTP(head) else { return }
            try respond(to: try TransferRequest.parse(message), context: context)
        } catch {
            reply(400, "Bad Request", context: context)
        }
    }

    private func reply(
        _ code: Int, _ reason: String, headers: [(String, String)] = [], context: ChannelHandlerContext
    ) {
        var text =
            "HTTP/1.1 \(code) \(reason)\r\nServer: \(node.configuration.userAgent)\r\nContent-Length: 0\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Connection: close\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func respond(to request: TransferRequest, context: ChannelHandlerContext) throws {
        let entry: ShareEntry? =
            switch request.target {
            case .sha1(let hash): node.share(sha1: hash)
            case .index(let index, _): node.share(index: index)
            }
        guard let entry else { return reply(404, "Not Found", context: context) }
        guard node.uploads < node.maxUploads else {
            return reply(503, "Busy", headers: [("Retry-After", "60")], context: context)
        }
        let size = entry.file.size
        var start: UInt64 = 0
        var last = size == 0 ? 0 : size - 1
        var partial = false
        if let range = request.range {
            guard range.start < size else {
                return reply(
                    416, "Requested Range Not Satisfiable", headers: [("Content-Range", "bytes */\(size)")],
                    context: context)
            }
            start = range.start
            last = min(range.end ?? (size - 1), size - 1)
            partial = true
        }
        let length = size == 0 ? 0 : last - start + 1
        var text =
            "HTTP/1.1 \(partial ? "206 Partial Content" : "200 OK")\r\nServer: \(node.configuration.userAgent)\r\n"
        text += "Content-Type: application/binary\r\nContent-Length: \(length)\r\n"
        if partial { text += "Content-Range: bytes \(start)-\(last)/\(size)\r\n" }
        text += "X-Gnutella-Content-URN: \(SHA1URN.string(entry.file.sha1))\r\n"
        // The mesh: whoever downloads tells us where else the file is (and where it will be: the
        // downloader's own address); we tell them the others we know.
        var excluded: Set<Endpoint> = []
        if let listen = node.configuration.listen { excluded.insert(listen) }
        if let requester = context.channel.remoteAddress.flatMap(Endpoint.init) { excluded.insert(requester) }
        let alternates = node.alternateLocations.get(entry.file.sha1, except: excluded)
        for location in request.alternates where !excluded.contains(location) {
            node.alternateLocations.add(location, for: entry.file.sha1)
        }
        if !alternates.isEmpty {
            text += "X-Alt: \(alternates.map(\.description).joined(separator: ","))\r\n"
        }
        text += "Connection: close\r\n\r\n"
        context.write(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
        guard request.method == "GET", length > 0 else {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        file = try SystemPackage.FileDescriptor.open(entry.path, .readOnly)
        // The request was whole: from here the transfer lives under the idle timeout only.
        ConnectionGuard.handshakeCompleted(context.channel)
        node.uploads += 1
        counted = true
        position = start
        end = last + 1
        name = entry.file.name
        pump(context: context)
    }

    /// Sends chunks while the socket is writable; the rest when it becomes writable again.
    private func pump(context: ChannelHandlerContext) {
        guard let file else { return }
        while context.channel.isWritable, position < end {
            let count = Int(min(UInt64(Self.chunk), end - position))
            var buffer = context.channel.allocator.buffer(capacity: count)
            let read =
                (try? buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                    try file.read(
                        fromAbsoluteOffset: Int64(position),
                        into: UnsafeMutableRawBufferPointer(rebasing: raw.prefix(count)))
                }) ?? 0
            guard read > 0 else {
                finish(context: context)
                return
            }
            position += UInt64(read)
            sent += Int64(read)
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        context.flush()
        if position >= end {
            let remote = context.channel.remoteAddress.flatMap(Endpoint.init)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { [node, name, sent] _ in
                if let remote { node.onEvent(.uploaded(name: name, bytes: sent, to: remote)) }
                context.close(promise: nil)
            }
            finish(context: nil)
        }
    }

    private func finish(context: ChannelHandlerContext?) {
        try? file?.close()
        file = nil
        if counted {
            node.uploads -= 1
            counted = false
        }
        context?.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(context: context)
    }
}

extension HandshakeMessage {
    /// An HTTP/1.x message head (request or response) in the same bounded parser: start line,
    /// headers, blank line.
    public static func parseHTTP(_ bytes: [UInt8]) throws(GnutellaError) -> (HandshakeMessage, Int)? {
        guard let end = headerEnd(bytes) else {
            if bytes.count > maxBytes {
                throw .tooLarge(field: "HTTP headers", size: bytes.count, limit: maxBytes)
            }
            return nil
        }
        // Reuse the handshake parser by presenting the start line as a Gnutella one.
        var prefixed = Array("GNUTELLA ".utf8) + bytes[0..<end]
        prefixed.reserveCapacity(0)
        guard let (message, _) = try parse(prefixed) else { return nil }
        return (
            HandshakeMessage(startLine: String(message.startLine.dropFirst(9)), headers: message.headers), end
        )
    }
}

/// Downloads a file over HTTP from a servent that has it and checks it against its SHA-1:
/// `GET /uri-res/N2R?urn:sha1:…` (with a `Range` to resume a partial file), the body written to
/// `<path>.part` and renamed to `path` only when its SHA-1 is right.
public enum GnutellaDownload {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        case status(Int, String)
        case hashMismatch(expected: String, got: String)
        case short(Int64, expected: Int64)

        public var description: String {
            switch self {
            case .status(let code, let reason): "the servent answered \(code) \(reason)"
            case .hashMismatch(let expected, let got):
                "the data's SHA-1 is \(got), not \(expected): discarded"
            case .short(let got, let expected): "the transfer ended after \(got) of \(expected) bytes"
            }
        }
    }

    /// Fetches `sha1` from `host` into `path`; `progress` gets (bytes so far, total) on the
    /// event loop.
    public static func fetch(
        sha1: [UInt8], from host: Endpoint, to path: FilePath, group: any EventLoopGroup,
        userAgent: String = "PeerStack/0.1",
        progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> Int64 {
        try await transfer(sha1: sha1, host: host.description, to: path, userAgent: userAgent) {
            makeHandler in
            _ = try await TCPDialer.connect(
                to: host, on: group.next(),
                limits: ConnectionLimits(handshakeTimeout: nil, idleTimeout: .seconds(60))
            ) { channel in
                try channel.pipeline.syncOperations.addHandler(makeHandler())
            }.get()
        } progress: {
            progress($0, $1)
        }
    }

    /// The transfer itself: `attach` puts the handler on a connection (dialled, or one a
    /// firewalled servent opened to us with GIV).
    static func transfer(
        sha1: [UInt8], host: String, to path: FilePath, userAgent: String,
        attach: (@escaping @Sendable () -> DownloadHandler) async throws -> Void,
        progress: @escaping @Sendable (Int64, Int64) -> Void
    ) async throws -> Int64 {
        let partial = FilePath(path.string + ".part")
        let fd = try SystemPackage.FileDescriptor.open(
            partial, .readWrite, options: [.create, .truncate],
            permissions: [.ownerReadWrite, .groupRead, .otherRead])
        let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int64.self)
        let request = TransferRequest(target: .sha1(sha1)).encoded(host: host, userAgent: userAgent)
        do {
            try await attach { DownloadHandler(request: request, file: fd, done: done, progress: progress) }
            let size = try await done.futureResult.get()
            try fd.close()
            let (_, got) = try ShareEntry.hashFile(partial)
            guard got == sha1 else {
                _ = unlink(partial.string)
                throw Failure.hashMismatch(expected: SHA1URN.string(sha1), got: SHA1URN.string(got))
            }
            guard rename(partial.string, path.string) == 0 else { throw Errno(rawValue: errno) }
            return size
        } catch {
            try? fd.close()
            _ = unlink(partial.string)
            done.fail(error)
            throw error
        }
    }
}

/// The download side of one HTTP transfer: sends the request, checks the status, writes the
/// body to the file, completes with the byte count when the body is whole.
final class DownloadHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let request: [UInt8]
    let file: SystemPackage.FileDescriptor
    let done: EventLoopPromise<Int64>
    let progress: @Sendable (Int64, Int64) -> Void
    private var head: [UInt8] = []
    private var length: Int64?
    private var received: Int64 = 0
    private var finished = false

    init(
        request: [UInt8], file: SystemPackage.FileDescriptor, done: EventLoopPromise<Int64>,
        progress: @escaping @Sendable (Int64, Int64) -> Void
    ) {
        self.request = request
        self.file = file
        self.done = done
        self.progress = progress
    }

    private var sent = false

    /// On a GIV connection the channel is already active when the handler is added.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if length == nil {
                head += buffer.readableBytesView
                guard let (message, used) = try HandshakeMessage.parseHTTP(head) else { return }
                let parts = message.startLine.split(separator: " ", maxSplits: 2)
                let code = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
                guard code == 200 || code == 206 else {
                    throw GnutellaDownload.Failure.status(code, parts.count > 2 ? String(parts[2]) : "")
                }
                guard let size = message["Content-Length"].flatMap({ Int64($0) }), size >= 0 else {
                    throw GnutellaError.invalid(field: "Content-Length", offset: 0, reason: "missing")
                }
                length = size
                buffer = ByteBuffer(bytes: head[used...])
                head = []
            }
            guard let length else { return }
            let take = min(Int64(buffer.readableBytes), length - received)
            if take > 0 {
                let written = try buffer.readableBytesView.prefix(Int(take)).withUnsafeBytes {
                    try file.writeAll(toAbsoluteOffset: received, $0)
                }
                received += Int64(written)
                progress(received, length)
            }
            if received >= length {
                finish(context: context, nil)
            }
        } catch {
            finish(context: context, error)
        }
    }

    private func finish(context: ChannelHandlerContext, _ error: (any Error)?) {
        guard !finished else { return }
        finished = true
        if let error { done.fail(error) } else { done.succeed(received) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            done.fail(GnutellaDownload.Failure.short(received, expected: length ?? -1))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(context: context, error)
    }
}
