import Foundation
import IPFS
import NIOCore
import NIOPosix

/// The running `ipfs daemon`'s control channel, which `ipfs swarm` and `ipfs routing` use when a
/// daemon serves the repository: a Unix socket `api.sock` in the repository, mode 0600 (only its
/// user may drive the node), one JSON request and one JSON response per connection, each side
/// half-closing when it has written.
enum DaemonControl {
    struct Request: Codable, Sendable {
        var verb: String
        var arguments: [String] = []
    }

    struct Response: Codable, Sendable {
        var lines: [String] = []
        var error: String?
    }

    static let maxRequest = 64 << 10
    static let maxResponse = 4 << 20

    static func path(_ store: FileBlockstore) -> String { store.root.appending("api.sock").string }

    /// Serves requests with `handler` until the task is cancelled.
    static func serve(at path: String, handler: @escaping @Sendable (Request) async -> Response) async throws
        -> Task<Void, Never>
    {
        guard path.utf8.count < 104 else {
            throw IPFSError.badInput("the control socket path \(path) is too long for a Unix socket")
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        chmod(path, 0o600)
        return Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await withTaskCancellationHandler {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { try? await answer(connection, handler) }
                        }
                    }
                } onCancel: {
                    server.channel.close(promise: nil)
                }
            }
            unlink(path)
        }
    }

    private static func answer(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
        _ handler: @Sendable (Request) async -> Response
    ) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var data = ByteBuffer()
            for try await chunk in inbound {
                data.writeImmutableBuffer(chunk)
                guard data.readableBytes <= maxRequest else { return }
            }
            let response: Response
            if let request = try? JSONDecoder().decode(Request.self, from: Data(data.readableBytesView)) {
                response = await handler(request)
            } else {
                response = Response(error: "not a control request")
            }
            try await outbound.write(ByteBuffer(bytes: try JSONEncoder().encode(response)))
        }
    }

    /// Sends `request` to the daemon serving at `path`; nil when no daemon answers there.
    static func call(at path: String, _ request: Request) async throws -> Response? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(unixDomainSocketPath: path) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            return nil  // a socket left by a daemon that is gone
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: try JSONEncoder().encode(request)))
            outbound.finish()
            var data = ByteBuffer()
            for try await chunk in inbound {
                data.writeImmutableBuffer(chunk)
                guard data.readableBytes <= maxResponse else {
                    throw IPFSError.badInput("the daemon's answer is over \(maxResponse) bytes")
                }
            }
            return try JSONDecoder().decode(Response.self, from: Data(data.readableBytesView))
        }
    }

    /// Runs `request` on the daemon of `store`, printing its lines; false when no daemon runs.
    static func run(_ request: Request, store: FileBlockstore) async throws -> Bool {
        guard let response = try await call(at: path(store), request) else { return false }
        if let error = response.error { throw IPFSError.badInput(error) }
        for line in response.lines { print(line) }
        return true
    }
}
