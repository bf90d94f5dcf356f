import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PeerNet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("HTTP lingering close")
struct HTTPLingeringTests {
    /// A blocking client: sends `request` whole, then reads until the server closes.
    static func exchange(port: Int, request: [UInt8]) throws -> (sent: Int, reply: [UInt8], closed: Bool) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes {
                send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { break }
            sent += n
        }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return (sent, reply, n == 0) }
            reply += chunk[..<n]
        }
    }

    @Test(
        "a head over NIO's limit gets its 400 although the client is still sending: the server half-closes and drains"
    )
    func oversizedHead() async throws {
        let listener = try await TCPListener.bind(
            on: Endpoint(ip: .loopbackV4, port: 0), group: MultiThreadedEventLoopGroup.singleton,
            configuration: TCPListener.Configuration(limits: ConnectionLimits(handshakeTimeout: nil))
        ) { channel in
            try channel.pipeline.syncOperations.addHandler(HTTPLingeringClose())
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(CloseOnError())
        }
        let port = try #require(listener.localAddress?.port)
        // 600 KiB of header: far past the parser's 80 KiB, more than the server's receive buffer
        // holds, so without lingering the close resets the connection under the client's send.
        let head =
            Array("GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ".utf8) + [UInt8](repeating: 0x61, count: 600 << 10)
        let (sent, reply, closed) = try await Task.detached {
            try Self.exchange(port: Int(port), request: head)
        }.value
        #expect(sent == head.count, "the server reset the connection after \(sent) bytes")
        #expect(String(decoding: reply.prefix(12), as: UTF8.self) == "HTTP/1.1 400")
        #expect(closed, "the server did not close the connection")
        await listener.close()
    }
}

/// Closes the connection on any error, as the tracker's and the RPC server's handlers do.
final class CloseOnError: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
