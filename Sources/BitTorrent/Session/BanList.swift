import PeerNet

/// Who sent bad data, and who is banned for it (libtorrent's "smart ban"): each block of a
/// piece is remembered with its sender; a failed piece sent by one peer bans it, one sent by
/// several gives each a strike (`maxStrikes` bans); when a piece that failed later passes, a
/// block whose first digest differs from the good one names its sender, who is banned.
///
/// Bans and strikes are kept by IP (a peer cannot escape by changing its port), except on
/// loopback, where local peers differ only by port: see ``key(_:)``.
struct BanList: Sendable {
    private var addresses: Set<Endpoint> = []
    private var peerIDs: Set<[UInt8]> = []
    private var strikes: [Endpoint: Int] = [:]
    /// Per piece, which peer sent each block: the suspects if the piece fails.
    private var contributors: [Int: [Int: Endpoint]] = [:]
    /// Per failed piece, each block's digest and sender, to find the culprit once it passes.
    private var failedBlocks: [Int: [Int: [(peer: Endpoint, digest: [UInt8])]]] = [:]

    /// What a ban or strike is recorded under: the IP (port 0), or the whole endpoint on loopback.
    static func key(_ address: Endpoint) -> Endpoint {
        address.ip.isLoopback ? address : Endpoint(ip: address.ip, port: 0)
    }

    /// Whether the address (by its key) is banned.
    func isBanned(_ address: Endpoint) -> Bool { addresses.contains(Self.key(address)) }

    /// Whether this endpoint may be dialled: not banned, and not ourselves.
    func mayDial(_ address: Endpoint) -> Bool { !isBanned(address) && !addresses.contains(address) }

    /// Whether a handshake from this address and peer ID is refused.
    func refuses(_ address: Endpoint, peerID: [UInt8]) -> Bool {
        !mayDial(address) || peerIDs.contains(peerID)
    }

    /// Never dial this endpoint again (ourselves, reached through one of our addresses).
    mutating func refuseEndpoint(_ address: Endpoint) { addresses.insert(address) }

    /// Bans the address's key. False when it was banned already.
    mutating func ban(_ address: Endpoint) -> Bool { addresses.insert(Self.key(address)).inserted }

    /// A banned peer's ID, so it cannot come back from another address.
    mutating func banPeerID(_ peerID: [UInt8]) { peerIDs.insert(peerID) }

    /// A block of `request`'s piece was received from `address`.
    mutating func blockReceived(_ request: BlockRequest, from address: Endpoint) {
        contributors[request.piece, default: [:]][request.offset / BlockRequest.standardLength] = address
    }

    /// Whether the piece's check must return its blocks' digests (it failed before).
    func wantsBlockDigests(_ piece: Int) -> Bool { failedBlocks[piece] != nil }

    /// A piece passed: the senders of blocks that differed from the good ones, with a reason.
    mutating func piecePassed(_ piece: Int, blockDigests: [[UInt8]]?) -> [(Endpoint, String)] {
        contributors[piece] = nil
        guard let failed = failedBlocks.removeValue(forKey: piece), let blockDigests else { return [] }
        var culprits: [(Endpoint, String)] = []
        for (index, entries) in failed.sorted(by: { $0.key < $1.key }) where index < blockDigests.count {
            for entry in entries where entry.digest != blockDigests[index] {
                culprits.append((entry.peer, "sent a corrupt block of piece \(piece)"))
            }
        }
        return culprits
    }

    /// A failed piece's true leaves are known (proved by its merkle tree, BEP 52): the senders
    /// of blocks whose digest differs, with a reason.
    mutating func blocksProven(_ piece: Int, leaves: [[UInt8]]) -> [(Endpoint, String)] {
        guard let failed = failedBlocks.removeValue(forKey: piece) else { return [] }
        var culprits: [(Endpoint, String)] = []
        for (index, entries) in failed.sorted(by: { $0.key < $1.key }) where index < leaves.count {
            for entry in entries where entry.digest != leaves[index] {
                culprits.append(
                    (
                        entry.peer,
                        "sent block \(index) of piece \(piece), which does not match its merkle hash"
                    ))
            }
        }
        return culprits
    }

    /// A piece failed: the peers to ban now, with a reason.
    mutating func pieceFailed(_ piece: Int, blockDigests: [[UInt8]]?, maxStrikes: Int) -> [(Endpoint, String)]
    {
        let senders = contributors.removeValue(forKey: piece) ?? [:]
        if let blockDigests {
            for (index, sender) in senders where index < blockDigests.count {
                failedBlocks[piece, default: [:]][index, default: []].append((sender, blockDigests[index]))
            }
        }
        let suspects = Set(senders.values)
        if suspects.count == 1, let culprit = suspects.first {
            return [(culprit, "sent every block of piece \(piece), which failed its hash check")]
        }
        var culprits: [(Endpoint, String)] = []
        for suspect in suspects.sorted(by: { $0.description < $1.description }) {
            let count = strikes[Self.key(suspect), default: 0] + 1
            strikes[Self.key(suspect)] = count
            if count >= maxStrikes { culprits.append((suspect, "took part in \(count) pieces that failed")) }
        }
        return culprits
    }
}
