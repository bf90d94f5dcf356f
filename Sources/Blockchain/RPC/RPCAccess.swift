import Crypto
import Foundation
import NIOHTTP1
import PeerNet
import SystemPackage

/// Who may call the JSON-RPC, as Bitcoin Core decides it: HTTP Basic credentials, either a
/// cookie written afresh at every start (`<datadir>/.cookie`, `__cookie__:<64 hex digits>`, mode
/// 0600, removed at stop) or `--rpcuser`/`--rpcpassword`. Besides them, a request must be a POST
/// of `application/json` naming this host (`Host: 127.0.0.1`, `localhost` or `[::1]`) and carry
/// no `Origin`: a web page cannot send that without a CORS preflight, which this server never
/// answers, so no page a local user visits can drive the node (nor can DNS rebinding).
public struct RPCAccess: Sendable {
    public let user: String
    let passwordDigest: SHA256.Digest
    /// The cookie file this access wrote, if any.
    public let cookieFile: String?

    /// The user name Core writes in its cookie.
    public static let cookieUser = "__cookie__"

    public init(user: String, password: String) {
        self.user = user
        self.passwordDigest = SHA256.hash(data: Array(password.utf8))
        self.cookieFile = nil
    }

    private init(user: String, password: String, cookieFile: String) {
        self.user = user
        self.passwordDigest = SHA256.hash(data: Array(password.utf8))
        self.cookieFile = cookieFile
    }

    /// Writes a fresh cookie in `directory` (readable by its owner only) and accepts it.
    public static func writeCookie(in directory: String) throws -> RPCAccess {
        var random = SystemRandomNumberGenerator()
        let secret = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
        let path = directory + "/.cookie"
        try SmallFile.writeAtomically(
            Array("\(cookieUser):\(secret)".utf8), to: FilePath(path), permissions: .ownerReadWrite)
        return RPCAccess(user: cookieUser, password: secret, cookieFile: path)
    }

    /// Reads `user:password` from a cookie file (what a client does).
    public static func readCookie(_ path: String) throws -> (user: String, password: String) {
        let text = String(decoding: try SmallFile.read(FilePath(path), limit: 4096), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let colon = text.firstIndex(of: ":") else {
            throw RPCError(RPCError.miscError, "\(path) is not a cookie file (no ':')")
        }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    /// Removes the cookie this access wrote (at a clean stop, as Core).
    public func removeCookie() {
        if let cookieFile { _ = unlink(cookieFile) }
    }

    /// Why a request was turned away, with the HTTP status it gets.
    public enum Refusal: Error, Sendable, Equatable {
        case methodNotAllowed
        case forbidden(String)
        case unauthorized
        case unsupportedMediaType

        public var status: HTTPResponseStatus {
            switch self {
            case .methodNotAllowed: return .methodNotAllowed
            case .forbidden: return .forbidden
            case .unauthorized: return .unauthorized
            case .unsupportedMediaType: return .unsupportedMediaType
            }
        }
    }

    /// Checks a request head; nil when it may go on.
    public func refusal(for head: HTTPRequestHead) -> Refusal? {
        guard head.method == .POST else { return .methodNotAllowed }
        if head.headers.contains(name: "Origin") { return .forbidden("requests from web pages are refused") }
        guard let host = head.headers.first(name: "Host"), Self.isLocalHost(host) else {
            return .forbidden("the Host header must name this machine (127.0.0.1, localhost or [::1])")
        }
        guard let authorization = head.headers.first(name: "Authorization"), accepts(authorization) else {
            return .unauthorized
        }
        let type = head.headers.first(name: "Content-Type")?.lowercased() ?? ""
        guard type == "application/json" || type.hasPrefix("application/json;") else {
            return .unsupportedMediaType
        }
        return nil
    }

    /// `Host` as a loopback name or literal, with or without a port (read by PeerNet's
    /// `HostPort` parser).
    static func isLocalHost(_ value: String) -> Bool {
        guard let host = try? HostPort(parsing: value.trimmingCharacters(in: .whitespaces), defaultPort: 80)
        else {
            return false
        }
        return host.host.lowercased() == "localhost" || host.endpoint?.ip.isLoopback == true
    }

    /// Whether a `Basic` authorization names our user and password (compared by digest, so the
    /// time taken says nothing of how much matched).
    func accepts(_ authorization: String) -> Bool {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", parts[1].utf8.count <= 1024,
            let decoded = Data(base64Encoded: String(parts[1])),
            let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
        else { return false }
        let user = String(pair[..<colon])
        let password = String(pair[pair.index(after: colon)...])
        let digest = SHA256.hash(data: Array(password.utf8))
        return (digest == passwordDigest) && user == self.user
    }
}
