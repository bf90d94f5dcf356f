import Multiformats

/// Bitcoin's base58 (the base58btc alphabet; each leading zero byte is a '1').
public enum Base58 {
    public static func encode(_ bytes: [UInt8]) -> String {
        String(decoding: Multibase.base58btc.digits(of: bytes), as: UTF8.self)
    }

    public static func decode(_ text: String) throws(BlockchainError) -> [UInt8] {
        do {
            return try Multibase.base58btc.decode(digits: Array(text.utf8))
        } catch {
            throw .badAddress("not base58: \(error)")
        }
    }
}

/// Base58Check (Bitcoin's address and WIF text): payload, then the first 4 bytes of its double
/// SHA-256, in base58.
public enum Base58Check {
    public static func encode(_ payload: [UInt8]) -> String {
        let checksum = Hash256.doubleSHA256(payload).bytes.prefix(4)
        return String(decoding: Multibase.base58btc.digits(of: payload + checksum), as: UTF8.self)
    }

    public static func decode(_ text: String) throws(BlockchainError) -> [UInt8] {
        guard text.utf8.count <= 128 else { throw .badAddress("too long for Base58Check") }
        let bytes: [UInt8]
        do {
            bytes = try Multibase.base58btc.decode(digits: Array(text.utf8))
        } catch {
            throw .badAddress("not base58: \(error)")
        }
        guard bytes.count >= 4 else { throw .badAddress("shorter than its checksum") }
        let payload = Array(bytes.dropLast(4))
        guard Hash256.doubleSHA256(payload).bytes.prefix(4).elementsEqual(bytes.suffix(4)) else {
            throw .badAddress("Base58Check checksum does not match")
        }
        return payload
    }
}

/// BIP 173 bech32 and BIP 350 bech32m.
public enum Bech32 {
    public enum Variant: Sendable { case bech32, bech32m }

    static let alphabet = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)

    static func polymod(_ values: [UInt8]) -> UInt32 {
        let generators: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        var check: UInt32 = 1
        for value in values {
            let top = check >> 25
            check = (check & 0x1ff_ffff) << 5 ^ UInt32(value)
            for (index, generator) in generators.enumerated() where (top >> index) & 1 == 1 {
                check ^= generator
            }
        }
        return check
    }

    static func expand(_ hrp: [UInt8]) -> [UInt8] { hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 } }

    static func constant(_ variant: Variant) -> UInt32 { variant == .bech32 ? 1 : 0x2bc8_30a3 }

    /// Encodes 5-bit `data` under `hrp`.
    public static func encode(hrp: String, data: [UInt8], variant: Variant) -> String {
        let h = Array(hrp.utf8)
        let value = polymod(expand(h) + data + [0, 0, 0, 0, 0, 0]) ^ constant(variant)
        let checksum = (0..<6).map { UInt8((value >> (5 * (5 - UInt32($0)))) & 31) }
        return hrp + "1" + String(decoding: (data + checksum).map { alphabet[Int($0)] }, as: UTF8.self)
    }

    /// Decodes a bech32 or bech32m string (one case only, at most 90 characters).
    public static func decode(_ text: String) throws(BlockchainError) -> (
        hrp: String, data: [UInt8], variant: Variant
    ) {
        let characters = Array(text.utf8)
        guard characters.count <= 90 else { throw .badAddress("longer than 90 characters") }
        guard characters.allSatisfy({ $0 >= 33 && $0 <= 126 }) else {
            throw .badAddress("a character outside 33…126")
        }
        let hasLower = characters.contains { $0 >= 0x61 && $0 <= 0x7a }
        let hasUpper = characters.contains { $0 >= 0x41 && $0 <= 0x5a }
        guard !(hasLower && hasUpper) else { throw .badAddress("mixed case") }
        let lower = characters.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 32 : $0 }
        guard let separator = lower.lastIndex(of: 0x31), separator >= 1, separator + 7 <= lower.count else {
            throw .badAddress("no separator '1' with a prefix and a 6-character checksum")
        }
        let hrp = Array(lower[..<separator])
        var data: [UInt8] = []
        for character in lower[(separator + 1)...] {
            guard let value = alphabet.firstIndex(of: character) else {
                throw .badAddress("'\(Character(UnicodeScalar(character)))' is not a bech32 character")
            }
            data.append(UInt8(value))
        }
        let check = polymod(expand(hrp) + data)
        let variant: Variant
        if check == constant(.bech32) {
            variant = .bech32
        } else if check == constant(.bech32m) {
            variant = .bech32m
        } else {
            throw .badAddress("bech32 checksum does not match")
        }
        return (String(decoding: hrp, as: UTF8.self), Array(data.dropLast(6)), variant)
    }

    /// Regroups bits (8 → 5 with padding, 5 → 8 without).
    public static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0
        var bits = 0
        var out: [UInt8] = []
        let maximum = (1 << to) - 1
        for value in data {
            guard Int(value) >> from == 0 else { return nil }
            accumulator = accumulator << from | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((accumulator >> bits) & maximum))
            }
        }
        if pad {
            if bits > 0 { out.append(UInt8((accumulator << (to - bits)) & maximum)) }
        } else if bits >= from || (accumulator << (to - bits)) & maximum != 0 {
            return nil
        }
        return out
    }
}

/// Which chain an address or WIF key belongs to.
public struct NetworkPrefixes: Sendable, Hashable {
    public var pubkeyHash: UInt8
    public var scriptHash: UInt8
    public var secretKey: UInt8
    public var bech32: String

    public static let mainnet = NetworkPrefixes(
        pubkeyHash: 0x00, scriptHash: 0x05, secretKey: 0x80, bech32: "bc")
    public static let testnet = NetworkPrefixes(
        pubkeyHash: 0x6f, scriptHash: 0xc4, secretKey: 0xef, bech32: "tb")
    public static let regtest = NetworkPrefixes(
        pubkeyHash: 0x6f, scriptHash: 0xc4, secretKey: 0xef, bech32: "bcrt")
}

/// A Bitcoin address: what it pays to, as a scriptPubKey.
public enum Address: Hashable, Sendable {
    case p2pkh([UInt8])
    case p2sh([UInt8])
    /// Segwit: version 0 (P2WPKH 20 bytes, P2WSH 32), version 1 taproot, …
    case witness(version: UInt8, program: [UInt8])

    /// Parses Base58Check (P2PKH, P2SH) or bech32/bech32m (BIP 173, 350) for `network`.
    /// `bip350: false` accepts either checksum for every version, as BIP 173 alone did.
    public init(_ text: String, network: NetworkPrefixes, bip350: Bool = true) throws(BlockchainError) {
        if text.lowercased().hasPrefix(network.bech32 + "1") {
            let (hrp, data, variant) = try Bech32.decode(text)
            guard hrp == network.bech32, let version = data.first, version <= 16,
                let program = Bech32.convertBits(Array(data.dropFirst()), from: 5, to: 8, pad: false),
                program.count >= 2, program.count <= 40
            else { throw .badAddress("not a segwit address for '\(network.bech32)'") }
            guard !bip350 || (version == 0) == (variant == .bech32) else {
                throw .badAddress("version \(version) must use \(version == 0 ? "bech32" : "bech32m")")
            }
            guard version != 0 || program.count == 20 || program.count == 32 else {
                throw .badAddress("version 0 program of \(program.count) bytes")
            }
            self = .witness(version: version, program: program)
            return
        }
        let payload = try Base58Check.decode(text)
        guard payload.count == 21 else { throw .badAddress("Base58Check payload of \(payload.count) bytes") }
        switch payload[0] {
        case network.pubkeyHash: self = .p2pkh(Array(payload.dropFirst()))
        case network.scriptHash: self = .p2sh(Array(payload.dropFirst()))
        default: throw .badAddress("version byte \(payload[0]) is not this network's")
        }
    }

    public func string(network: NetworkPrefixes) -> String {
        switch self {
        case .p2pkh(let hash): return Base58Check.encode([network.pubkeyHash] + hash)
        case .p2sh(let hash): return Base58Check.encode([network.scriptHash] + hash)
        case .witness(let version, let program):
            let data = [version] + (Bech32.convertBits(program, from: 8, to: 5, pad: true) ?? [])
            return Bech32.encode(hrp: network.bech32, data: data, variant: version == 0 ? .bech32 : .bech32m)
        }
    }

    /// The output script that pays this address.
    public var scriptPubKey: [UInt8] {
        switch self {
        case .p2pkh(let hash): return [0x76, 0xa9, 0x14] + hash + [0x88, 0xac]
        case .p2sh(let hash): return [0xa9, 0x14] + hash + [0x87]
        case .witness(let version, let program):
            return [version == 0 ? 0 : 0x50 + version, UInt8(program.count)] + program
        }
    }

    /// P2WPKH of a compressed key.
    public static func p2wpkh(_ key: PublicKey) -> Address { .witness(version: 0, program: key.hash160) }
    public static func p2pkh(_ key: PublicKey) -> Address { .p2pkh(key.hash160) }
}

extension PrivateKey {
    /// Wallet Import Format (Base58Check of prefix, key, and 0x01 for a compressed public key).
    public func wif(network: NetworkPrefixes, compressed: Bool = true) -> String {
        Base58Check.encode([network.secretKey] + bytes + (compressed ? [0x01] : []))
    }

    /// Parses WIF; returns the key and whether its public key is compressed.
    public static func fromWIF(_ text: String, network: NetworkPrefixes) throws(BlockchainError) -> (
        PrivateKey, Bool
    ) {
        let payload = try Base58Check.decode(text)
        guard payload.first == network.secretKey else { throw .badKey("WIF prefix is not this network's") }
        switch payload.count {
        case 33: return (try PrivateKey(bytes: Array(payload[1...])), false)
        case 34 where payload[33] == 0x01: return (try PrivateKey(bytes: Array(payload[1..<33])), true)
        default: throw .badKey("WIF payload of \(payload.count) bytes")
        }
    }
}
