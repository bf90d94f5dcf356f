import Foundation

/// Any JSON value, for request parameters and request ids (which may be any JSON).
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var intValue: Int? {
        if case .integer(let number) = self { return Int(exactly: number) }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// The value as a number's text (`1e-05`, `0.5`, `3`) or a string's, for exact amounts.
    public var numberText: String? {
        switch self {
        case .integer(let value): return String(value)
        case .double(let value): return value.isFinite ? "\(value)" : nil
        case .string(let text): return text
        default: return nil
        }
    }
}

/// A JSON-RPC error as Bitcoin Core reports it (`{"code": -5, "message": "Block not found"}`),
/// with Core's codes (`src/rpc/protocol.h`).
public struct RPCError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public let code: Int
    public let message: String

    public init(_ code: Int, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) (code \(code))" }

    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    public static let parseError = -32700
    public static let miscError = -1
    public static let typeError = -3
    public static let invalidAddressOrKey = -5
    public static let insufficientFunds = -6
    public static let outOfMemory = -7
    public static let invalidParameter = -8
    public static let clientNotConnected = -9
    public static let deserializationError = -22
    public static let verifyError = -25
    public static let verifyRejected = -26
    public static let verifyAlreadyInChain = -27
    public static let walletError = -4
}

/// Which JSON-RPC the client spoke: 1.0 (no `jsonrpc` member: Core's legacy replies, with
/// both `result` and `error`) or 2.0.
public enum JSONRPCVersion: Sendable, Hashable {
    case v1
    case v2
}

/// One call: the method, its parameters (by position or by name) and the id to answer with.
public struct JSONRPCRequest: Sendable, Hashable {
    public var version: JSONRPCVersion
    public var method: String
    public var positional: [JSONValue]
    public var named: [String: JSONValue]
    /// Nil for a 2.0 notification (no `id` member): no reply is sent.
    public var id: JSONValue?

    public init(
        version: JSONRPCVersion = .v1, method: String, positional: [JSONValue] = [],
        named: [String: JSONValue] = [:], id: JSONValue? = .integer(1)
    ) {
        self.version = version
        self.method = method
        self.positional = positional
        self.named = named
        self.id = id
    }

    /// Reads one request object; a typed error names what is wrong.
    public init(_ value: JSONValue) throws(RPCError) {
        guard case .object(let object) = value else {
            throw RPCError(RPCError.invalidRequest, "Invalid Request object")
        }
        switch object["jsonrpc"] {
        case nil, .string("1.0"): version = .v1
        case .string("2.0"): version = .v2
        default: throw RPCError(RPCError.invalidRequest, "jsonrpc field must be a string \"1.0\" or \"2.0\"")
        }
        id = object["id"] ?? (version == .v1 ? .null : nil)
        guard case .string(let name) = object["method"] else {
            throw RPCError(RPCError.invalidRequest, "Method must be a string")
        }
        method = name
        positional = []
        named = [:]
        switch object["params"] {
        case nil, .null: break
        case .array(let values): positional = values
        case .object(let values): named = values
        default: throw RPCError(RPCError.invalidRequest, "Params must be an array or object")
        }
    }
}

/// JSON-RPC bodies in and out, as Bitcoin Core's HTTP server (`httprpc.cpp`) reads and writes
/// them: one request object or a batch (an array), replies in the request's version, and the
/// HTTP status Core gives each.
public enum JSONRPC {
    /// Largest batch answered (Core has none; each call costs work, so one is set).
    public static let maxBatch = 1_000

    /// What a body holds: one request, or a batch whose elements each parsed or failed.
    public enum Body: Sendable {
        case single(JSONRPCRequest)
        case batch([Result<JSONRPCRequest, RPCError>])
    }

    /// Parses a request body; not JSON is a parse error (-32700), not a request object an
    /// invalid request (-32600).
    public static func parse(_ bytes: [UInt8]) throws(RPCError) -> Body {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw RPCError(RPCError.parseError, "Parse error")
        }
        if case .array(let items) = value {
            guard items.count <= maxBatch else {
                throw RPCError(RPCError.invalidRequest, "more than \(maxBatch) calls in one batch")
            }
            return .batch(
                items.map { item -> Result<JSONRPCRequest, RPCError> in
                    Result { () throws(RPCError) -> JSONRPCRequest in try JSONRPCRequest(item) }
                })
        }
        return .single(try JSONRPCRequest(value))
    }

    /// A reply object's bytes: 1.0 carries `result`, `error` and `id`; 2.0 `result` or
    /// `error`, with `"jsonrpc": "2.0"`.
    public static func reply(
        _ outcome: Result<Data, RPCError>, id: JSONValue?, version: JSONRPCVersion
    ) -> Data {
        let idText = (try? JSONEncoder().encode(id ?? .null)) ?? Data("null".utf8)
        var out = Data("{".utf8)
        if version == .v2 { out += Data("\"jsonrpc\":\"2.0\",".utf8) }
        switch outcome {
        case .success(let result):
            out += Data("\"result\":".utf8) + result
            if version == .v1 { out += Data(",\"error\":null".utf8) }
        case .failure(let error):
            if version == .v1 { out += Data("\"result\":null,".utf8) }
            out += Data("\"error\":".utf8) + ((try? JSONEncoder().encode(error)) ?? Data("null".utf8))
        }
        out += Data(",\"id\":".utf8) + idText + Data("}".utf8)
        return out
    }

    /// The HTTP status of a single reply (Core: 1.0 errors are 500, but 400 for an invalid
    /// request and 404 for an unknown method; 2.0 replies are 200, notifications 204).
    public static func status(for outcome: Result<Data, RPCError>?, version: JSONRPCVersion) -> Int {
        guard let outcome else { return 204 }
        guard case .failure(let error) = outcome, version == .v1 else { return 200 }
        switch error.code {
        case RPCError.invalidRequest: return 400
        case RPCError.methodNotFound: return 404
        default: return 500
        }
    }
}

/// A method's parameters, read by position or by name (Core's named arguments), each with a
/// typed error naming the parameter.
public struct RPCParameters: Sendable {
    let values: [JSONValue?]

    /// Lines `request` up with the method's parameter `names`; too many, or an unknown name, is
    /// an error.
    public init(_ request: JSONRPCRequest, names: [String]) throws(RPCError) {
        if !request.named.isEmpty {
            for key in request.named.keys where !names.contains(key) {
                throw RPCError(RPCError.miscError, "Unknown named parameter \(key)")
            }
            values = names.map { request.named[$0] }
        } else {
            guard request.positional.count <= names.count else {
                throw RPCError(
                    RPCError.miscError,
                    "\(request.method) takes at most \(names.count) parameters (\(names.joined(separator: ", ")))"
                )
            }
            values = names.indices.map { $0 < request.positional.count ? request.positional[$0] : nil }
        }
        self.names = names
    }

    let names: [String]

    func value(_ index: Int) -> JSONValue? {
        guard index < values.count, let value = values[index], value != .null else { return nil }
        return value
    }

    func missing(_ index: Int) -> RPCError {
        RPCError(RPCError.miscError, "missing required parameter \(names[index])")
    }

    public func string(_ index: Int) throws(RPCError) -> String? {
        guard let value = value(index) else { return nil }
        guard case .string(let text) = value else {
            throw RPCError(RPCError.typeError, "\(names[index]) must be a string")
        }
        return text
    }

    public func requiredString(_ index: Int) throws(RPCError) -> String {
        guard let text = try string(index) else { throw missing(index) }
        return text
    }

    public func int(_ index: Int) throws(RPCError) -> Int? {
        guard let value = value(index) else { return nil }
        switch value {
        case .integer(let number) where number >= Int64(Int32.min) && number <= Int64(Int32.max):
            return Int(number)
        case .string(let text) where Int32(text) != nil: return Int(text)
        default: throw RPCError(RPCError.typeError, "\(names[index]) must be an integer")
        }
    }

    public func requiredInt(_ index: Int) throws(RPCError) -> Int {
        guard let number = try int(index) else { throw missing(index) }
        return number
    }

    public func bool(_ index: Int) throws(RPCError) -> Bool? {
        guard let value = value(index) else { return nil }
        switch value {
        case .bool(let flag): return flag
        // Core's getblock and getrawtransaction take a number for their verbosity/verbose.
        case .integer(let number): return number != 0
        default: throw RPCError(RPCError.typeError, "\(names[index]) must be a boolean")
        }
    }

    /// An amount in BTC (a JSON number or a string) as satoshis, exactly.
    public func amount(_ index: Int) throws(RPCError) -> Int64? {
        guard let value = value(index) else { return nil }
        guard let text = value.numberText else {
            throw RPCError(RPCError.typeError, "\(names[index]) must be an amount in BTC")
        }
        do {
            return try Amount.satoshis(text)
        } catch {
            throw RPCError(RPCError.typeError, "Invalid amount: \(error)")
        }
    }

    public func hash(_ index: Int) throws(RPCError) -> Hash256? {
        guard let text = try string(index) else { return nil }
        guard text.utf8.count == 64, let hash = Hash256(hex: text) else {
            throw RPCError(
                RPCError.invalidParameter, "\(names[index]) must be of length 64 hexadecimal characters")
        }
        return hash
    }

    public func requiredHash(_ index: Int) throws(RPCError) -> Hash256 {
        guard let hash = try hash(index) else { throw missing(index) }
        return hash
    }
}
