import Blockchain
import Testing

@Suite struct KeyTests {
    @Test func base58Vectors() throws {
        for entry in try Vectors.load("base58_encode_decode.json") {
            let bytes = Vectors.hex(try #require(entry[0] as? String))
            let text = try #require(entry[1] as? String)
            #expect(Base58.encode(bytes) == text)
            #expect(try Base58.decode(text) == bytes)
        }
    }

    /// The vectors are BIP 173's (before BIP 350 moved version 1+ to bech32m).
    @Test("BIP 173's segwit addresses decode to their scriptPubKeys; its invalid ones are refused")
    func bech32Vectors() throws {
        for entry in try Vectors.load("bech32_encode_decode.json") {
            let script = Vectors.hex(try #require(entry[0] as? String))
            let text = try #require(entry[1] as? String)
            let network: NetworkPrefixes = text.lowercased().hasPrefix("bc1") ? .mainnet : .testnet
            let address = try Address(text, network: network, bip350: false)
            #expect(address.scriptPubKey == script, "\(text)")
            if script.first == 0 { #expect(address.string(network: network) == text.lowercased()) }
        }
        for entry in try Vectors.load("bech32_invalid.json") {
            let text = try #require(entry[0] as? String)
            #expect(throws: BlockchainError.self, "\(text)") {
                _ = try Address(text, network: .mainnet, bip350: false)
            }
            #expect(throws: BlockchainError.self, "\(text)") {
                _ = try Address(text, network: .testnet, bip350: false)
            }
        }
        // BIP 350: version 1 uses bech32m (the taproot output of the generator's x coordinate).
        let taproot = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        let address = try Address(taproot, network: .mainnet)
        #expect(
            Hex.encode(address.scriptPubKey)
                == "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
        #expect(address.string(network: .mainnet) == taproot)
        #expect(throws: BlockchainError.self) {
            _ = try Address(
                "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
                network: .mainnet)
        }
    }

    @Test("sign with RFC 6979 and verify; a changed hash or key fails; signatures are low-S DER")
    func ecdsa() throws {
        let key = try PrivateKey(bytes: [UInt8](repeating: 0, count: 31) + [1])
        // The generator point: the public key of secret 1.
        #expect(
            Hex.encode(key.publicKey().bytes)
                == "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
        let hash = BitcoinHash.sha256(Array("PeerStack".utf8))
        let signature = key.sign(hash: hash)
        #expect(key.sign(hash: hash) == signature)  // deterministic nonce
        #expect(signature.first == 0x30 && PublicKey.hasLowS(signature))
        #expect(key.publicKey().verify(derSignature: signature, hash: hash))
        #expect(key.publicKey(compressed: false).verify(derSignature: signature, hash: hash))
        #expect(!key.publicKey().verify(derSignature: signature, hash: BitcoinHash.sha256([1])))
        #expect(!PrivateKey.generate().publicKey().verify(derSignature: signature, hash: hash))
        #expect(throws: BlockchainError.self) { try PrivateKey(bytes: [UInt8](repeating: 0, count: 32)) }
        #expect(throws: BlockchainError.self) {
            try PublicKey(bytes: [0x02] + [UInt8](repeating: 0xff, count: 32))
        }
    }

    @Test func schnorr() {
        let key = PrivateKey.generate()
        let message = BitcoinHash.sha256(Array("BIP 340".utf8))
        let (signature, xOnly) = Schnorr.sign(
            message: message, key: key, aux: [UInt8](repeating: 7, count: 32))
        #expect(Schnorr.verify(signature: signature, message: message, xOnlyKey: xOnly))
        #expect(!Schnorr.verify(signature: signature, message: BitcoinHash.sha256([0]), xOnlyKey: xOnly))
    }

    @Test("hashes: RIPEMD-160 and HASH160 known answers")
    func hashes() {
        #expect(Hex.encode(BitcoinHash.ripemd160([])) == "9c1185a5c5e9fc54612808977ee8f548b2258d31")
        #expect(
            Hex.encode(BitcoinHash.ripemd160(Array("abc".utf8))) == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
        )
        // HASH160 of the generator's compressed key, the address 1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH.
        let key = try? PrivateKey(bytes: [UInt8](repeating: 0, count: 31) + [1])
        let address = key.map { Address.p2pkh($0.publicKey()).string(network: .mainnet) }
        #expect(address == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH")
        #expect(key?.wif(network: .mainnet) == "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn")
        if let wif = key?.wif(network: .mainnet) {
            #expect((try? PrivateKey.fromWIF(wif, network: .mainnet))?.0 == key)
        }
    }
}
