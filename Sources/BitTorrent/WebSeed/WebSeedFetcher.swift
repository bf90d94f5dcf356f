import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL

/// Why a web seed's answer was refused.
public struct WebSeedError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var reason: String
    public var description: String { "\(url): \(reason)" }
}

/// Fetches runs of blocks from web seeds (BEP 19) over HTTP and HTTPS with AsyncHTTPClient:
/// one range request per file a run touches, redirects followed (at most 5, never in a cycle),
/// every answer checked before its bytes become blocks — `206` with the `Content-Range` asked
/// for (or `200` when the whole file was asked for), exactly the length asked for, no more read.
final class WebSeedFetcher: Sendable {
    let client: HTTPClient
    /// Most redirects followed for one request.
    static let maxRedirects = 5
    static let timeout: TimeAmount = .seconds(30)

    init(group: any EventLoopGroup, extraTrustRoots: [NIOSSLCertificate]) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if !extraTrustRoots.isEmpty { tls.additionalTrustRoots = [.certificates(extraTrustRoots)] }
        let configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .follow(max: Self.maxRedirects, allowCycles: false),
            timeout: .init(connect: .seconds(10), read: Self.timeout),
            connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 4))
        client = HTTPClient(eventLoopGroup: group, configuration: configuration)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// The blocks of `run` (consecutive in the torrent's data), each a slice of one buffer.
    func fetch(_ run: [BlockRequest], layout: WebSeedLayout) async throws -> [ByteBuffer] {
        guard let first = run.first else { return [] }
        let start = Int64(first.piece) * Int64(layout.info.pieceLength) + Int64(first.offset)
        let total = run.reduce(0) { $0 + $1.length }
        var assembled = ByteBuffer()
        // Padding stays zeros; every other byte is overwritten by what the server sent.
        assembled.writeRepeatingByte(0, count: total)
        for fetch in layout.fetches(for: start..<start + Int64(total)) {
            let body = try await get(fetch)
            assembled.setBuffer(body, at: fetch.offset)
        }
        var offset = 0
        return run.map { request in
            defer { offset += request.length }
            return assembled.getSlice(at: offset, length: request.length) ?? ByteBuffer()
        }
    }

    private func get(_ fetch: WebSeedLayout.Fetch) async throws -> ByteBuffer {
        let length = Int(fetch.fileRange.count)
        func fail(_ reason: String) -> WebSeedError { WebSeedError(url: fetch.url, reason: reason) }
        var request = HTTPClientRequest(url: fetch.url)
        request.headers.add(name: "User-Agent", value: "PeerStack/0.1.0")
        request.headers.add(
            name: "Range", value: "bytes=\(fetch.fileRange.lowerBound)-\(fetch.fileRange.upperBound - 1)")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: Self.timeout)
        } catch {
            throw fail("\(error)")
        }
        switch response.status {
        case .partialContent:
            guard let header = response.headers.first(name: "Content-Range"),
                let answered = parseContentRange(header), answered.range == fetch.fileRange
            else {
                throw fail(
                    "answered \(response.headers.first(name: "Content-Range") ?? "no Content-Range") for bytes \(fetch.fileRange.lowerBound)-\(fetch.fileRange.upperBound - 1)"
                )
            }
        case .ok:
            guard fetch.isWholeFile else { throw fail("ignores Range: HTTP 200 for a part of the file") }
        default:
            throw fail("HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: length)
        } catch {
            throw fail("sent more than the \(length) bytes asked for, or broke off: \(error)")
        }
        guard body.readableBytes == length else {
            throw fail("sent \(body.readableBytes) bytes of the \(length) asked for")
        }
        return body
    }
}
