/// The rules that differ between networks (Core's `CChainParams`).
public struct ChainParameters: Sendable {
    public var name: String
    public var genesis: Block
    public var powLimit: UInt256
    /// Blocks between difficulty adjustments (2016) and the time they should take (two weeks).
    public var retargetInterval: Int
    public var targetTimespan: UInt32
    /// Regtest keeps its difficulty.
    public var noRetargeting: Bool
    public var subsidyHalvingInterval: Int
    /// P2P message start bytes.
    public var magic: [UInt8]
    public var defaultPort: UInt16
    public var prefixes: NetworkPrefixes
    /// Height from which segwit rules (witness commitments, witness scripts) apply.
    public var segwitHeight: Int

    public var genesisHash: Hash256 { genesis.hash }

    /// The block subsidy at `height`: 50 BTC halved every interval.
    public func subsidy(at height: Int) -> Int64 {
        let halvings = height / subsidyHalvingInterval
        guard halvings < 64 else { return 0 }
        return (50 * Consensus.coin) >> Int64(halvings)
    }

    /// Satoshi's genesis coinbase ("The Times 03/Jan/2009 …"), shared by every network.
    static func genesisBlock(time: UInt32, nonce: UInt32, bits: UInt32) -> Block {
        let text = Array("The Times 03/Jan/2009 Chancellor on brink of second bailout for banks".utf8)
        var scriptSig: [UInt8] = [0x04, 0xff, 0xff, 0x00, 0x1d, 0x01, 0x04]
        scriptSig.appendPush(text)
        let key = Hex.decode(
            "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5f"
        )!
        var output: [UInt8] = []
        output.appendPush(key)
        output.append(Opcode.checkSig)
        let coinbase = Transaction(
            version: 1, inputs: [TxIn(previous: .null, scriptSig: scriptSig)],
            outputs: [TxOut(value: 50 * Consensus.coin, scriptPubKey: output)])
        let header = BlockHeader(
            version: 1, previous: .zero, merkleRoot: coinbase.txid, time: time, bits: bits, nonce: nonce)
        return Block(header: header, transactions: [coinbase])
    }

    public static let mainnet = ChainParameters(
        name: "main", genesis: genesisBlock(time: 1_231_006_505, nonce: 2_083_236_893, bits: 0x1d00_ffff),
        powLimit: Target.expand(0x1d00_ffff)!, retargetInterval: 2016, targetTimespan: 14 * 24 * 60 * 60,
        noRetargeting: false, subsidyHalvingInterval: 210_000, magic: [0xf9, 0xbe, 0xb4, 0xd9],
        defaultPort: 8333,
        prefixes: .mainnet, segwitHeight: 481_824)

    /// Trivial difficulty, no retargeting, every rule active from the start: for local networks.
    public static let regtest = ChainParameters(
        name: "regtest", genesis: genesisBlock(time: 1_296_688_602, nonce: 2, bits: 0x207f_ffff),
        powLimit: Target.expand(0x207f_ffff)!, retargetInterval: 2016, targetTimespan: 14 * 24 * 60 * 60,
        noRetargeting: true, subsidyHalvingInterval: 150, magic: [0xfa, 0xbf, 0xb5, 0xda], defaultPort: 18444,
        prefixes: .regtest, segwitHeight: 0)
}
