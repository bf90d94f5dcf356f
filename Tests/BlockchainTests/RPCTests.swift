import Blockchain
import Foundation
import NIOHTTP1
import Testing

@Suite("JSON-RPC as Bitcoin Core speaks it")
struct RPCTests {
    func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("1.0 and 2.0 requests, positional and named parameters, batches; bad bodies get Core's codes")
    func parsing() throws {
        guard
            case .single(let v1) = try JSONRPC.parse(
                body(#"{"version":"1.1","method":"getblockhash","params":[5],"id":7}"#))
        else { throw RPCError(0, "not single") }
        #expect(
            v1.version == .v1 && v1.method == "getblockhash" && v1.positional == [.integer(5)]
                && v1.id == .integer(7))
        guard
            case .single(let v2) = try JSONRPC.parse(
                body(#"{"jsonrpc":"2.0","method":"getblock","params":{"blockhash":"00","verbosity":2}}"#))
        else { throw RPCError(0, "not single") }
        #expect(v2.version == .v2 && v2.id == nil && v2.named["verbosity"] == .integer(2))
        guard
            case .batch(let items) = try JSONRPC.parse(
                body(#"[{"method":"a","id":1}, 5, {"jsonrpc":"3.0","method":"b"}]"#))
        else { throw RPCError(0, "not a batch") }
        #expect(items.count == 3)
        #expect((try? items[0].get())?.method == "a")
        #expect(throws: RPCError.self) { try items[1].get() }
        #expect(throws: RPCError.self) { try items[2].get() }
        for (text, code) in [
            ("{", RPCError.parseError), ("", RPCError.parseError), ("[", RPCError.parseError),
            (#"{"method":5}"#, RPCError.invalidRequest),
            (#"{"method":"x","params":7}"#, RPCError.invalidRequest),
            ("17", RPCError.invalidRequest), (String(repeating: "[", count: 100_000), RPCError.parseError),
        ] {
            do {
                _ = try JSONRPC.parse(body(text))
                Issue.record("\(text.prefix(20)) parsed")
            } catch {
                #expect(error.code == code, "\(text.prefix(20)): \(error)")
            }
        }
    }

    @Test("replies: 1.0 carries result, error and id; 2.0 one of them; HTTP statuses as Core's")
    func replies() throws {
        let ok = JSONRPC.reply(.success(Data("3".utf8)), id: .integer(1), version: .v1)
        #expect(String(decoding: ok, as: UTF8.self) == #"{"result":3,"error":null,"id":1}"#)
        let failure: Result<Data, RPCError> = .failure(RPCError(-5, "Block not found"))
        let v1 =
            try JSONSerialization.jsonObject(with: JSONRPC.reply(failure, id: .string("x"), version: .v1))
            as? [String: Any]
        #expect(
            v1?["result"] is NSNull && (v1?["error"] as? [String: Any])?["code"] as? Int == -5
                && v1?["id"] as? String == "x")
        let v2 =
            try JSONSerialization.jsonObject(with: JSONRPC.reply(failure, id: .integer(2), version: .v2))
            as? [String: Any]
        #expect(v2?["jsonrpc"] as? String == "2.0" && v2?["result"] == nil && v2?["error"] != nil)
        #expect(JSONRPC.status(for: failure, version: .v1) == 500)
        #expect(JSONRPC.status(for: .failure(RPCError(RPCError.methodNotFound, "")), version: .v1) == 404)
        #expect(JSONRPC.status(for: .failure(RPCError(RPCError.invalidRequest, "")), version: .v1) == 400)
        #expect(JSONRPC.status(for: failure, version: .v2) == 200)
        #expect(JSONRPC.status(for: nil, version: .v2) == 204)
    }

    func head(_ headers: [(String, String)], method: HTTPMethod = .POST) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: "/", headers: HTTPHeaders(headers))
    }

    @Test("access: Basic credentials, a loopback Host, JSON, no Origin; each refusal with its status")
    func access() throws {
        let access = RPCAccess(user: "alice", password: "s3cret:with:colons")
        let auth = "Basic " + Data("alice:s3cret:with:colons".utf8).base64EncodedString()
        let good: [(String, String)] = [
            ("Host", "127.0.0.1:18443"), ("Authorization", auth), ("Content-Type", "application/json"),
        ]
        #expect(access.refusal(for: head(good)) == nil)
        #expect(access.refusal(for: head([("Host", "localhost")] + good.dropFirst())) == nil)
        #expect(access.refusal(for: head([("Host", "[::1]:8332")] + good.dropFirst())) == nil)
        #expect(access.refusal(for: head(good, method: .GET)) == .methodNotAllowed)
        #expect(access.refusal(for: head(good + [("Origin", "https://example.com")]))?.status == .forbidden)
        for host in ["evil.example", "127.0.0.1.evil.example", "10.0.0.1:18443", "[::1", "localhost:99999"] {
            #expect(
                access.refusal(for: head([("Host", host)] + good.dropFirst()))?.status == .forbidden,
                "\(host)")
        }
        #expect(access.refusal(for: head([good[0], good[2]])) == .unauthorized)
        for wrong in ["alice:nope", "bob:s3cret:with:colons", "alice", ""] {
            let header = "Basic " + Data(wrong.utf8).base64EncodedString()
            #expect(
                access.refusal(for: head([good[0], ("Authorization", header), good[2]])) == .unauthorized)
        }
        #expect(
            access.refusal(for: head([good[0], ("Authorization", "Bearer x"), good[2]])) == .unauthorized)
        #expect(
            access.refusal(for: head([good[0], good[1], ("Content-Type", "text/plain")]))
                == .unsupportedMediaType)
        #expect(access.refusal(for: head([good[0], good[1]])) == .unsupportedMediaType)
        #expect(
            access.refusal(
                for: head([good[0], good[1], ("Content-Type", "application/json; charset=utf-8")])) == nil)
    }

    @Test("a cookie is fresh at every start, the owner's only, and reads back")
    func cookie() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cookie-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try RPCAccess.writeCookie(in: directory)
        let (user, password) = try RPCAccess.readCookie(directory + "/.cookie")
        #expect(user == "__cookie__" && password.count == 64)
        let mode =
            try FileManager.default.attributesOfItem(atPath: directory + "/.cookie")[.posixPermissions]
            as? Int
        #expect(mode == 0o600)
        let auth = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        let request = head([
            ("Host", "127.0.0.1"), ("Authorization", auth), ("Content-Type", "application/json"),
        ])
        #expect(first.refusal(for: request) == nil)
        let second = try RPCAccess.writeCookie(in: directory)
        #expect(second.refusal(for: request) == .unauthorized)  // the old cookie no longer opens it
        second.removeCookie()
        #expect(!FileManager.default.fileExists(atPath: directory + "/.cookie"))
    }

    @Test("Core's formats: difficulty, script asm and output types")
    func formats() throws {
        #expect(abs(RPCFormats.difficulty(bits: 0x1d00_ffff) - 1) < 1e-12)
        #expect(abs(RPCFormats.difficulty(bits: 0x207f_ffff) - 4.656542373906925e-10) < 1e-20)
        let hash = [UInt8](repeating: 0xab, count: 20)
        let p2pkh: [UInt8] = [0x76, 0xa9, 0x14] + hash + [0x88, 0xac]
        #expect(
            RPCFormats.asm(p2pkh) == "OP_DUP OP_HASH160 " + String(repeating: "ab", count: 20)
                + " OP_EQUALVERIFY OP_CHECKSIG")
        #expect(RPCFormats.classify(p2pkh, network: .regtest).type == "pubkeyhash")
        let p2wpkh: [UInt8] = [0x00, 0x14] + hash
        let (type, address) = RPCFormats.classify(p2wpkh, network: .regtest)
        #expect(type == "witness_v0_keyhash" && address?.hasPrefix("bcrt1q") == true)
        #expect(RPCFormats.asm([0x51, 0x02, 0x10, 0x27, 0x4f]) == "1 10000 -1")
        #expect(RPCFormats.asm([0x4c, 0x05, 0x01]) == "[error]")
        #expect(RPCFormats.classify([0x6a, 0x01, 0x00], network: .regtest).type == "nulldata")
    }
}
