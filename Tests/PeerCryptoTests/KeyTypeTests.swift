import PeerCrypto
import Testing

/// secp256k1 and RSA identities against py-libp2p 0.8.1 (an independent implementation): keys,
/// peer IDs and signatures it made. Both schemes are deterministic (RFC 6979 nonces, PKCS #1
/// v1.5), so the signatures PeerStack makes over the same message must be byte-for-byte equal.
@Suite("libp2p secp256k1 and RSA keys")
struct KeyTypeTests {
    static func hex(_ text: String) -> [UInt8] {
        PeerCryptoTests.hex(text.filter { !$0.isWhitespace })
    }

    struct Vector {
        let type: KeyType
        let publicKey: String
        let privateKey: String
        let signature: String
        let peer: String
    }

    static let message = Array("peerstack known answer".utf8)

    static let secp256k1 = Vector(
        type: .secp256k1,
        publicKey: """
            080212210202b00415ae431561e52897192d054309e9c24cd21a27512a477b31e9d395e3f4
            """,
        privateKey: """
            080212203c4761d9b87246545ea18fa607c5713289e675f6045440e040bbea0a6d4bfa65
            """,
        signature: """
            30450221009212ba8427d32093d24546c6850d1934ad2393a09cc2e58a3c8a071f2c17653f02202c3959451c71fc5289
            bf54c2deb44fff63d899a85656dc7e1900f90838aea855
            """,
        peer: "16Uiu2HAkucATuqmxuSNU8sU1SwipU2X2mUu3NYxUBVwPPPA25NPu")

    static let rsa = Vector(
        type: .rsa,
        publicKey: """
            080012a60230820122300d06092a864886f70d01010105000382010f003082010a0282010100b100e9b17599725acc20
            b4be315a99f0dfd5b04db144a63beffd9153cd473e55b968eee0905616115708893ac796bebaf864dda3ec7cb0870398
            e16d9212a5b92ff0e5d143ea06eadd3ead69d47b608cda3d3b578dfcc8aba510060ff765ec852ac88214815cbc3d35aa
            7e7b4bf6c41d8e50dc3f0c2da749c0c87b8c9fabee87d08e4c3acd63a1583cf77ff039429770808c6ed17cca21070748
            994f4e28ffd2ff4651fbd9ee5a0aa952c37cf67293d6578388fda06c51ff158d6db481de60b7cb8d868232632c174625
            1d66304aad1194d949a0b092e485c849b57edf49fa08cbed3534f0d4906d85f91707808c69938d4bfa26fc3df53da8c3
            adeefd777db10203010001
            """,
        privateKey: """
            080012a809308204a40201000282010100b100e9b17599725acc20b4be315a99f0dfd5b04db144a63beffd9153cd473e
            55b968eee0905616115708893ac796bebaf864dda3ec7cb0870398e16d9212a5b92ff0e5d143ea06eadd3ead69d47b60
            8cda3d3b578dfcc8aba510060ff765ec852ac88214815cbc3d35aa7e7b4bf6c41d8e50dc3f0c2da749c0c87b8c9fabee
            87d08e4c3acd63a1583cf77ff039429770808c6ed17cca21070748994f4e28ffd2ff4651fbd9ee5a0aa952c37cf67293
            d6578388fda06c51ff158d6db481de60b7cb8d868232632c1746251d66304aad1194d949a0b092e485c849b57edf49fa
            08cbed3534f0d4906d85f91707808c69938d4bfa26fc3df53da8c3adeefd777db102030100010282010008f9568fd2ea
            372535b61709d145625a8733ada10bc2b2f1a51fd04e5d110e8ed0b41a6fd7db887a03b54ce556350d299c323b773e14
            3e8c32d54d811553c51391f3db080083290b7f70f8006e879c901998bb056bef47f2855f6e0a4151196431448a0d4d77
            78dafad98079027381f30c6a0ab796d7c9f46c1df1ff21c18919e381f29dcf34df5025cc8c2acf536b2e32ac65147ca7
            77828a4afa58a6d595c5dafef7b29fb0465d85ac0ede25fa5add90f5c3c57ab0f256e94a4f17e219170b5ec82334b24c
            8f6268dfe12ed400a3d7be9ddcf3a1657e8e1c4f9e9ef6b0dffe4c712a36f268016ea36a1327ce28d5ae494fbcd91a3c
            6d2679886ccb7b1ef2c102818100b99127a4f590fe541893301ab71c24631efbfa1385cb71092923e1745b153cdbaaa5
            05a59f06f1cd5126d7ca2c98d0d63b32e744304b2ce3fd06cf02c91c50a2b88e5d537ae97da793e07bca86d849b1d679
            7d5beab2720f4eab35909d4cd1ddf560e55c243f4ed2c8192b836388d5438057f5317237238bf6c8096167fbffc10281
            8100f42fae2dee621fba67be741ad4c4f13c302f5f765dbd46f40915e8e8c03cc9011fa548eba682ea6b7696c558e5b1
            61e3d2f5fbd0d580f44503686c0800dd988776652a7ed46cc4509e01bb4aae8c7c29af3c6a006f66f5763fdaf9fc08dc
            aea6fe3fb74e6a442b08879bb32f7436eb34de4e055dc6a8e000dff68fb6ebb9f9f102818100b56b3c1f0215a7100096
            a5c8f88c02e7053bc3d9a24cab4e11728ad07edbdc8bc5e1600bf3d58e40f4bdccea537f736c7ea3dd85c4d13a2a0b0d
            c5052c290a8c8b7263bb61c73499c8f10715918f933cd23a245ce0af64e3a23db0389a10a87d1f9083abf9a40b23f78c
            e405a821f69defb40e7b30f6c741e71ada50e8a06e01028181009a68000af93f40f2dd211847d31d09b1d6824e2a09d2
            6328730a50b1c4c56b10f3d2cf4e7b8732f66b11a18eba07b56f9b79821726ba993b7e912c26cf6d5042f041be625eae
            bc6081d974761ff3a39bb43c4e8721ea87f293244388f48d9f3ee76ca0dbcbe47915b6b264d6eff4be3c3b0a38e87873
            56da16c4d15188b39bf102818070edf9c749cd04ca1c7de588419be62e89bd2131faf25128ca8b328810ff4bc595f694
            4c012de7d88beae8b248be66bb3581c06c8c3b8ed66f04a4b4b264788be2fd8275ada26d2cfe4daebb8b3b3be4776423
            ff49b4ac7fb46569053cfd549cfa7823feb22b6f701cde27b96baf1c48bfbf0d3b308e008b9afda9849adf7332
            """,
        signature: """
            61e9ee832886bb65a54c01c6d3e9f7d61c048994afadf82ae5f303f7ec141ccedb99f94fb68b0f2280f47bee8e9c90f2
            6937a13d62e96abdf44b5f0269cc56a7a3e09ccfc199e934c7b480dba2fbad7f26463441c1660db33e024e5acbea0f39
            de411f4dca589982d7cfc3bcf10118eb418f85caf2d4ce90c387e4aa269f57e170e01e0fa0eb62cd54a2def4f3334028
            237e2802789bc6c43872c516141b15fd653d1bf1bdab2ad9dbb09c4107743bb9d3b665c7bd53d6a1b0bc9d4291b4605d
            1db1a7a3f8c3235f4f125dfbd4b58e20da1d8433533a37b5506e1a40abefefd8d372da80900814be64b798a4b3269f7d
            5f378fdbde6fc5a079ac0a82afbd4a72
            """,
        peer: "Qmbaz2k2fMmJm4YFuEiZ6WFVBjiStSiXRnkQfxLTgeMM7T")

    @Test(
        "py-libp2p's keys parse, give its peer IDs, verify its signatures, and sign the same",
        arguments: [
            secp256k1, rsa,
        ])
    func knownAnswers(_ vector: Vector) throws {
        let publicKey = try PublicKey(bytes: Self.hex(vector.publicKey))
        #expect(publicKey.type == vector.type)
        #expect(publicKey.peerID.description == vector.peer)
        #expect(try PeerID(vector.peer).matches(publicKey))
        let signature = Self.hex(vector.signature)
        #expect(publicKey.verify(signature, for: Self.message))
        #expect(!publicKey.verify(signature, for: Self.message + [0]))

        let privateKey = try PrivateKey(bytes: Self.hex(vector.privateKey))
        #expect(privateKey.publicKey == publicKey)
        #expect(try privateKey.sign(Self.message) == signature)
        // Our own encoding reads back to the same key.
        #expect(try PrivateKey(bytes: privateKey.bytes).publicKey == publicKey)
    }

    @Test("an RSA key under 2,048 bits and a secp256k1 point off the curve are refused")
    func refused() throws {
        // 33 bytes that are not a point: prefix 02 with x = p (not a field element).
        let offCurve = [0x02] + [UInt8](repeating: 0xFF, count: 32)
        #expect(throws: PeerCryptoError.self) {
            try PublicKey(EncodedKey(type: .secp256k1, data: offCurve))
        }
        #expect(throws: PeerCryptoError.self) {
            try PublicKey(EncodedKey(type: .rsa, data: [0x30, 0x03, 0x02, 0x01, 0x01]))
        }
    }

    @Test("fresh secp256k1 and RSA keys sign and verify; peer IDs inline secp256k1, hash RSA")
    func generated() throws {
        for type in [KeyType.secp256k1, .rsa] {
            let key = try PrivateKey.generate(type)
            let signature = try key.sign(Self.message)
            #expect(key.publicKey.verify(signature, for: Self.message))
            #expect((key.publicKey.peerID.inlinedKey != nil) == (type == .secp256k1))
        }
    }
}
