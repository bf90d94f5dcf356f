/// Chooses which blocks to request: pieces already started first (so few are half-done), then
/// a random piece while fewer than ``randomFirstPieces`` are complete (to have something to
/// trade soon), then rarest-first with random tie-breaks; or strictly in order in sequential
/// mode. When every missing block is requested, endgame hands out duplicates.
///
/// A value type with no clock or randomness of its own: the generator is passed in.
public struct PiecePicker: Sendable {
    /// Per-block state inside a started piece.
    enum BlockState: Hashable, Sendable {
        case free
        /// Requested from this many peers (more than one only in endgame).
        case requested(Int)
        /// Data received and handed to storage.
        case received
    }

    struct PartialPiece: Sendable {
        var blocks: [BlockState]
        var receivedCount = 0
        var writtenCount = 0
    }

    public let pieceCount: Int
    public let pieceLength: Int
    public let totalLength: Int64
    public let blockLength = BlockRequest.standardLength
    /// Pieces verified and stored.
    public private(set) var have: Bitfield
    /// How many connected peers have each piece.
    public private(set) var availability: [Int]
    /// 0 = not wanted; higher = sooner. From the files' priorities (an edge piece shared by two
    /// files takes the higher).
    public private(set) var priority: [UInt8]
    var partial: [Int: PartialPiece] = [:]
    /// Pieces whose blocks are all written and whose hash check is pending.
    public private(set) var verifying: Set<Int> = []
    /// Download in piece order (for streaming).
    public var sequential = false
    /// Random picks before rarest-first takes over.
    public var randomFirstPieces = 4

    public init(pieceCount: Int, pieceLength: Int, totalLength: Int64) {
        self.pieceCount = pieceCount
        self.pieceLength = pieceLength
        self.totalLength = totalLength
        have = Bitfield(count: pieceCount)
        availability = [Int](repeating: 0, count: pieceCount)
        priority = [UInt8](repeating: 1, count: pieceCount)
    }

    // MARK: Sizes

    public func pieceSize(_ piece: Int) -> Int {
        Int(min(Int64(pieceLength), totalLength - Int64(piece) * Int64(pieceLength)))
    }

    public func blockCount(_ piece: Int) -> Int { (pieceSize(piece) + blockLength - 1) / blockLength }

    public func block(_ piece: Int, _ index: Int) -> BlockRequest {
        let offset = index * blockLength
        return BlockRequest(piece: piece, offset: offset, length: min(blockLength, pieceSize(piece) - offset))
    }

    /// Whether `request` is exactly one of this torrent's blocks.
    public func isBlock(_ request: BlockRequest) -> Bool {
        request.piece >= 0 && request.piece < pieceCount && request.offset >= 0
            && request.offset % blockLength == 0 && request.offset < pieceSize(request.piece)
            && request.length == min(blockLength, pieceSize(request.piece) - request.offset)
    }

    // MARK: What we have and want

    public mutating func setHave(_ bitfield: Bitfield) {
        have = bitfield
        for piece in bitfield.setIndices { partial[piece] = nil }
    }

    /// Sets per-piece priorities (0 skips a piece).
    public mutating func setPriorities(_ priorities: [UInt8]) {
        guard priorities.count == pieceCount else { return }
        priority = priorities
    }

    /// Every wanted piece is verified.
    public var isComplete: Bool {
        for piece in 0..<pieceCount where priority[piece] > 0 && !have[piece] { return false }
        return true
    }

    /// Bytes of wanted pieces still missing.
    public var bytesLeft: Int64 {
        var left: Int64 = 0
        for piece in 0..<pieceCount where priority[piece] > 0 && !have[piece] {
            left += Int64(pieceSize(piece))
        }
        return left
    }

    public func isWanted(_ piece: Int) -> Bool { priority[piece] > 0 && !have[piece] }

    /// Whether a peer with `bitfield` has anything we want.
    public func wantsAnything(from bitfield: Bitfield) -> Bool {
        for piece in 0..<pieceCount where bitfield[piece] && isWanted(piece) { return true }
        return false
    }

    // MARK: Availability

    public mutating func peerHas(_ bitfield: Bitfield) {
        for piece in bitfield.setIndices { availability[piece] += 1 }
    }

    public mutating func peerHas(piece: Int) { availability[piece] += 1 }

    public mutating func peerLeft(_ bitfield: Bitfield) {
        for piece in bitfield.setIndices { availability[piece] = max(0, availability[piece] - 1) }
    }

    // MARK: Picking

    /// Up to `count` blocks to request from a peer having `bitfield`, none of `exclude` (already
    /// requested from that peer).
    public mutating func pick(
        count: Int, from bitfield: Bitfield, excluding exclude: (BlockRequest) -> Bool,
        using generator: inout some RandomNumberGenerator
    ) -> [BlockRequest] {
        guard count > 0 else { return [] }
        var picked: [BlockRequest] = []
        // 1. Started pieces, most complete first.
        let started = partial.keys.filter { bitfield[$0] && !verifying.contains($0) }
            .sorted { (partial[$0]?.receivedCount ?? 0) > (partial[$1]?.receivedCount ?? 0) }
        for piece in started {
            takeFree(piece, into: &picked, limit: count)
            if picked.count >= count { return picked }
        }
        // 2. New pieces.
        while picked.count < count, let piece = choosePiece(from: bitfield, using: &generator) {
            partial[piece] = PartialPiece(blocks: [BlockState](repeating: .free, count: blockCount(piece)))
            takeFree(piece, into: &picked, limit: count)
        }
        if !picked.isEmpty { return picked }
        // 3. Endgame: nothing free anywhere this peer could serve; duplicate outstanding blocks.
        guard isInEndgame else { return [] }
        for piece in started {
            guard var state = partial[piece] else { continue }
            for index in state.blocks.indices {
                guard case .requested(let requesters) = state.blocks[index] else { continue }
                let request = block(piece, index)
                guard !exclude(request) else { continue }
                state.blocks[index] = .requested(requesters + 1)
                picked.append(request)
                if picked.count >= count { break }
            }
            partial[piece] = state
            if picked.count >= count { break }
        }
        return picked
    }

    /// True when no wanted piece is left unstarted and no started piece has a free block.
    public var isInEndgame: Bool {
        for piece in 0..<pieceCount
        where isWanted(piece) && partial[piece] == nil && !verifying.contains(piece) {
            return false
        }
        for state in partial.values where state.blocks.contains(.free) { return false }
        return true
    }

    private mutating func takeFree(_ piece: Int, into picked: inout [BlockRequest], limit: Int) {
        guard var state = partial[piece] else { return }
        for index in state.blocks.indices where state.blocks[index] == .free {
            state.blocks[index] = .requested(1)
            picked.append(block(piece, index))
            if picked.count >= limit { break }
        }
        partial[piece] = state
    }

    private func choosePiece(from bitfield: Bitfield, using generator: inout some RandomNumberGenerator)
        -> Int?
    {
        var best: Int?
        var bestPriority: UInt8 = 0
        var bestAvailability = Int.max
        var ties = 0
        let random = !sequential && have.setCount < randomFirstPieces
        for piece in 0..<pieceCount {
            guard bitfield[piece], isWanted(piece), partial[piece] == nil, !verifying.contains(piece) else {
                continue
            }
            if sequential {
                if priority[piece] > bestPriority { (best, bestPriority) = (piece, priority[piece]) }
                continue
            }
            let availability = random ? 0 : self.availability[piece]
            if priority[piece] > bestPriority
                || (priority[piece] == bestPriority && availability < bestAvailability)
            {
                (best, bestPriority, bestAvailability, ties) = (piece, priority[piece], availability, 1)
            } else if priority[piece] == bestPriority && availability == bestAvailability {
                // Reservoir sampling: each tied piece is equally likely.
                ties += 1
                if Int.random(in: 0..<ties, using: &generator) == 0 { best = piece }
            }
        }
        return best
    }

    // MARK: Outcomes

    /// A request was cancelled, rejected, or its peer left: the block is free again unless
    /// others still have it requested.
    public mutating func release(_ request: BlockRequest) {
        guard var state = partial[request.piece] else { return }
        let index = request.offset / blockLength
        guard index < state.blocks.count, case .requested(let requesters) = state.blocks[index] else {
            return
        }
        state.blocks[index] = requesters > 1 ? .requested(requesters - 1) : .free
        partial[request.piece] = state
    }

    /// Records a block's arrival. Returns false for a block not wanted (already received,
    /// a piece we have): the caller drops the data.
    public mutating func received(_ request: BlockRequest) -> Bool {
        guard var state = partial[request.piece] else { return false }
        let index = request.offset / blockLength
        guard index < state.blocks.count, state.blocks[index] != .received else { return false }
        state.blocks[index] = .received
        state.receivedCount += 1
        partial[request.piece] = state
        return true
    }

    /// Records that a received block is on disk; returns true when the whole piece is written
    /// and should be verified.
    public mutating func written(_ request: BlockRequest) -> Bool {
        guard var state = partial[request.piece] else { return false }
        state.writtenCount += 1
        partial[request.piece] = state
        if state.writtenCount == state.blocks.count {
            verifying.insert(request.piece)
            return true
        }
        return false
    }

    /// A hash check's outcome: a good piece is had; a bad one starts over.
    public mutating func verified(_ piece: Int, passed: Bool) {
        verifying.remove(piece)
        partial[piece] = nil
        if passed { have[piece] = true }
    }

    /// Pieces started but not complete (for the resume state and progress).
    public var startedPieces: [Int] { Array(partial.keys) }
}
