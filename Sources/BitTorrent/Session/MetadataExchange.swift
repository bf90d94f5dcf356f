import Bencode

/// BEP 9 (`ut_metadata`): fetching the info dictionary from peers for a torrent known only by
/// its info-hash, and serving ours to peers that ask.
///
/// The size comes from each peer's extension handshake (`metadata_size`); the size most peers
/// report wins, so one peer lying about it cannot stall the fetch, and a size whose dictionary
/// failed the info-hash twice is no longer believed. Pieces are 16 KiB, asked of each peer that
/// reports the chosen size, and asked again elsewhere after 10 s. No sockets or clock inside.
struct MetadataExchange: Sendable {
    enum Outcome: Sendable {
        /// Still assembling (or nothing to do).
        case pending
        /// The dictionary matches the info-hash.
        case completed(InfoDictionary, bytes: [UInt8])
        /// The assembled dictionary did not match: every peer is asked afresh. `culprit`, when
        /// known, sent every piece and is to be closed.
        case failed(culprit: PeerKey?)
    }

    /// How long a piece request waits before it is asked of another peer.
    static let retryAfter: Duration = .seconds(10)

    let infoHash: InfoHash
    /// Our info dictionary, once known: served to peers and its size sent in our handshake.
    private(set) var infoBytes: [UInt8]?
    private var size: Int?
    private var pieces: [Int: [UInt8]] = [:]
    private var requestedAt: [Int: Moment] = [:]
    /// Who sent each piece: the culprit when only one peer sent them all and they fail.
    private var sources: [Int: PeerKey] = [:]
    /// Each peer's `metadata_size`, while it is believed.
    private var peerSizes: [PeerKey: Int] = [:]
    /// The pieces asked of each peer.
    private var requestedFrom: [PeerKey: Set<Int>] = [:]
    /// Sizes whose assembled dictionary failed the info-hash, with the count.
    private var failedSizes: [Int: Int] = [:]

    init(infoHash: InfoHash, infoBytes: [UInt8]? = nil) {
        self.infoHash = infoHash
        self.infoBytes = infoBytes
    }

    var isComplete: Bool { infoBytes != nil }

    private var pieceCount: Int {
        size.map { ($0 + MetadataMessage.pieceLength - 1) / MetadataMessage.pieceLength } ?? 0
    }

    /// A peer's extension handshake named its metadata size (or none). True when the chosen size
    /// changed, so every peer is to be asked afresh.
    mutating func peerAnnounced(_ key: PeerKey, size: Int?) -> Bool {
        peerSizes[key] = size
        return !isComplete && chooseSize()
    }

    /// A peer left; its outstanding piece requests go to others. True when the chosen size
    /// changed, so every peer is to be asked afresh.
    mutating func peerLeft(_ key: PeerKey) -> Bool {
        let hadSize = peerSizes.removeValue(forKey: key) != nil
        for piece in requestedFrom.removeValue(forKey: key) ?? [] { requestedAt[piece] = nil }
        return !isComplete && hadSize && chooseSize()
    }

    /// The pieces to ask of this peer now (none when it does not report the chosen size).
    mutating func requests(for key: PeerKey, now: Moment) -> [Int] {
        guard !isComplete, let size, peerSizes[key] == size else { return [] }
        var wanted: [Int] = []
        for piece in 0..<pieceCount where pieces[piece] == nil {
            if let at = requestedAt[piece], now - at < Self.retryAfter { continue }
            requestedAt[piece] = now
            requestedFrom[key, default: []].insert(piece)
            wanted.append(piece)
        }
        return wanted
    }

    /// Our answer to a peer's request for a piece.
    func reply(to piece: Int) -> MetadataMessage {
        guard let infoBytes, piece >= 0, piece * MetadataMessage.pieceLength < infoBytes.count else {
            return .reject(piece: piece)
        }
        let start = piece * MetadataMessage.pieceLength
        let bytes = Array(infoBytes[start..<min(start + MetadataMessage.pieceLength, infoBytes.count)])
        return .data(piece: piece, totalSize: infoBytes.count, bytes: bytes)
    }

    /// The peer refused a piece: others are asked instead.
    mutating func rejected(_ piece: Int, by key: PeerKey) {
        requestedAt[piece] = nil
        peerSizes[key] = nil
    }

    /// A piece arrived. Throws when it cannot belong to the dictionary being assembled.
    mutating func received(piece: Int, totalSize: Int, bytes: [UInt8], from key: PeerKey)
        throws(PeerWireError) -> Outcome
    {
        guard !isComplete, let size else { return .pending }
        guard totalSize == size, piece >= 0, piece < pieceCount,
            bytes.count == min(MetadataMessage.pieceLength, size - piece * MetadataMessage.pieceLength)
        else {
            throw .badExtensionMessage(
                "ut_metadata piece \(piece) does not fit a \(size)-byte info dictionary")
        }
        pieces[piece] = bytes
        sources[piece] = key
        guard pieces.count == pieceCount else { return .pending }
        var assembled: [UInt8] = []
        for index in 0..<pieceCount { assembled += pieces[index] ?? [] }
        let senders = Set(sources.values)
        pieces = [:]
        requestedAt = [:]
        sources = [:]
        requestedFrom = [:]
        guard Metainfo.hash(assembled) == infoHash || InfoHashV2(hashing: assembled).truncated == infoHash,
            let node = try? BencodeDecoder(mode: .lenient, limits: MetainfoLimits.standard.bencode)
                .decodeNode(assembled),
            let parsed = try? InfoDictionary(node: node, infoHash: infoHash)
        else {
            // Start over. A peer that sent every piece is the culprit; otherwise nobody is
            // known, and the size itself loses credit.
            failedSizes[size, default: 0] += 1
            let culprit = senders.count == 1 ? senders.first : nil
            if let culprit { peerSizes[culprit] = nil }
            _ = chooseSize()
            return .failed(culprit: culprit)
        }
        infoBytes = assembled
        self.size = nil
        peerSizes = [:]
        return .completed(parsed, bytes: assembled)
    }

    /// Takes the size that most peers report. True when the size changed (what was assembled
    /// is dropped).
    private mutating func chooseSize() -> Bool {
        var votes: [Int: Int] = [:]
        for size in peerSizes.values where failedSizes[size, default: 0] < 2 { votes[size, default: 0] += 1 }
        let best = votes.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key
        if let current = size, let currentVotes = votes[current], currentVotes >= votes[best ?? current] ?? 0
        {
            return false
        }
        guard best != size else { return false }
        pieces = [:]
        requestedAt = [:]
        sources = [:]
        requestedFrom = [:]
        size = best
        return best != nil
    }
}
