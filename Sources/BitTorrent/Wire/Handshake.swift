/// The 8 reserved handshake bytes: which extensions the sender supports.
public struct ReservedBits: Hashable, Sendable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8] = [UInt8](repeating: 0, count: 8)) {
        self.bytes = bytes.count == 8 ? bytes : [UInt8](repeating: 0, count: 8)
    }

    /// BEP 10 extension protocol: byte 5, bit 0x10.
    public var extensionProtocol: Bool {
        get { bytes[5] & 0x10 != 0 }
        set { bytes[5] = newValue ? bytes[5] | 0x10 : bytes[5] & ~0x10 }
    }

    /// BEP 6 fast extension: byte 7, bit 0x04.
    public var fastExtension: Bool {
        get { bytes[7] & 0x04 != 0 }
        set { bytes[7] = newValue ? bytes[7] | 0x04 : bytes[7] & ~0x04 }
    }

    /// BEP 52 v2 support (a hybrid torrent's connection may be upgraded): byte 7, bit 0x10.
    public var v2: Bool {
        get { bytes[7] & 0x10 != 0 }
        set { bytes[7] = newValue ? bytes[7] | 0x10 : bytes[7] & ~0x10 }
    }

    /// BEP 5 DHT: byte 7, bit 0x01.
    public var dht: Bool {
        get { bytes[7] & 0x01 != 0 }
        set { bytes[7] = newValue ? bytes[7] | 0x01 : bytes[7] & ~0x01 }
    }
}

/// The BEP 3 handshake: `\x13BitTorrent protocol`, reserved bits, info-hash, peer ID (68 bytes).
public struct Handshake: Hashable, Sendable {
    public static let length = 68
    static let protocolName = Array("\u{13}BitTorrent protocol".utf8)

    public var reserved: ReservedBits
    public var infoHash: InfoHash
    public var peerID: [UInt8]

    public init(reserved: ReservedBits, infoHash: InfoHash, peerID: [UInt8]) {
        self.reserved = reserved
        self.infoHash = infoHash
        self.peerID = peerID
    }

    public func encoded() -> [UInt8] {
        Self.protocolName + reserved.bytes + infoHash.bytes + peerID
    }

    /// Reads a handshake from exactly 68 bytes.
    public init(decoding bytes: some Collection<UInt8>) throws(PeerWireError) {
        let array = Array(bytes)
        guard array.count == Self.length else { throw .truncatedHandshake }
        guard array[0..<20].elementsEqual(Self.protocolName) else { throw .notBitTorrent }
        reserved = ReservedBits(bytes: Array(array[20..<28]))
        infoHash = InfoHash(uncheckedBytes: Array(array[28..<48]))
        peerID = Array(array[48..<68])
    }

    /// A random Azureus-style peer ID: `-PS0100-` and 12 random bytes.
    public static func makePeerID(using generator: inout some RandomNumberGenerator) -> [UInt8] {
        Array("-PS0100-".utf8) + (0..<12).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
