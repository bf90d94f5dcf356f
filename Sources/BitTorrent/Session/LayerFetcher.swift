/// Fetches the piece layers a v2 torrent's metadata lacks (a magnet link brings only the info
/// dictionary; BEP 52's `piece layers` are outside it) with hash requests: chunks of up to 512
/// hashes, each proved up to its file's root, at most two at a time per peer, a chunk a peer
/// refused not asked of it again.
struct LayerFetcher: Sendable {
    private var waiting: [HashRequest] = []
    private var inFlight: [HashRequest: PeerKey] = [:]
    private var refusedBy: [HashRequest: Set<PeerKey>] = [:]
    /// Proved chunks per file (by position in ``MerklePieces/files``), by first index.
    private var chunks: [Int: [Int: [[UInt8]]]] = [:]
    /// Most hash requests in flight to one peer.
    static let perPeer = 2

    init(merkle: MerklePieces) {
        for position in merkle.files.indices where merkle.files[position].needsLayer {
            if merkle.files[position].layer == nil { waiting += merkle.layerRequests(forFile: position) }
        }
    }

    var isDone: Bool { waiting.isEmpty && inFlight.isEmpty }

    /// The next requests to send to this peer.
    mutating func requests(for key: PeerKey) -> [HashRequest] {
        var budget = Self.perPeer - inFlight.values.filter { $0 == key }.count
        var picked: [HashRequest] = []
        var index = 0
        while budget > 0, index < waiting.count {
            let request = waiting[index]
            if refusedBy[request]?.contains(key) == true {
                index += 1
                continue
            }
            waiting.remove(at: index)
            inFlight[request] = key
            picked.append(request)
            budget -= 1
        }
        return picked
    }

    /// A proved chunk arrived. Returns the file's whole layer once every chunk of it is here.
    mutating func received(_ request: HashRequest, base: [[UInt8]], merkle: MerklePieces) -> (
        file: Int, layer: [[UInt8]]
    )? {
        guard inFlight.removeValue(forKey: request) != nil,
            let position = merkle.file(root: request.piecesRoot)
        else { return nil }
        chunks[position, default: [:]][request.index] = base
        let file = merkle.files[position]
        let expected = (file.pieceCount + MerklePieces.layerChunk - 1) / MerklePieces.layerChunk
        guard let got = chunks[position], got.count == expected else { return nil }
        chunks[position] = nil
        let layer = got.sorted { $0.key < $1.key }.flatMap(\.value)
        return (position, Array(layer.prefix(file.pieceCount)))
    }

    /// A chunk was refused, timed out or came with a bad proof: ask someone else.
    mutating func failed(_ request: HashRequest, by key: PeerKey) {
        guard inFlight.removeValue(forKey: request) != nil else { return }
        refusedBy[request, default: []].insert(key)
        waiting.append(request)
    }

    /// A peer left: its chunks go back to the queue.
    mutating func peerLeft(_ key: PeerKey) {
        for (request, owner) in inFlight where owner == key {
            inFlight[request] = nil
            waiting.append(request)
        }
        for request in refusedBy.keys { refusedBy[request]?.remove(key) }
    }

    /// A layer failed to lead to its root after all: fetch it again.
    mutating func restart(file position: Int, merkle: MerklePieces) {
        waiting += merkle.layerRequests(forFile: position)
    }
}
