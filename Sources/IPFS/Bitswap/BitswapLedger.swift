import DequeModule
import Multiformats

/// The serving half of Bitswap for one peer, sans I/O: the peer's wantlist (entries added,
/// cancelled, or replaced by a full list), and what to answer — blocks for want-blocks, `HAVE`
/// for want-haves (the block itself when it is small, as boxo does), `DONT_HAVE` when asked
/// for it. Answers are cut into messages of bounded size; a block is read only when its message
/// is built, so a peer that wants a million blocks costs its wantlist, not the blocks. A want
/// is answered once; one for a block not here, without `sendDontHave`, stays on the list until
/// cancelled, and is answered if the block comes (``blockAdded(_:)``).
public struct BitswapLedger: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Most wants kept for one peer (boxo keeps 1,024 in its queue per peer; a full list
        /// past this is cut).
        public var maxWants = 8_192
        /// Bytes of blocks in one outgoing message (the reader's cap is 4 MiB).
        public var maxMessageBytes = 2 << 20
        /// A want-have for a block this small gets the block.
        public var replaceHaveWithBlock = 1_024
        public init() {}
    }

    struct Want: Sendable, Hashable {
        var type: BitswapMessage.WantType
        var sendDontHave: Bool
        var priority: Int32
        /// In ``queue`` (waiting for an answer), or parked until the block comes.
        var queued = true
    }

    public let limits: Limits
    /// Wants not yet answered, in the order they came.
    var queue = Deque<CID>()
    var wants: [CID: Want] = [:]
    /// Wants refused because the list was full.
    public private(set) var dropped = 0

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Wants waiting for an answer.
    public var pending: Int { wants.count }

    /// Takes the wantlist part of a message from the peer.
    public mutating func received(_ message: BitswapMessage) {
        if message.full {
            queue.removeAll()
            wants.removeAll()
        }
        for entry in message.entries {
            if entry.cancel {
                wants[entry.cid] = nil  // its queue slot is skipped when reached
                continue
            }
            let want = Want(type: entry.wantType, sendDontHave: entry.sendDontHave, priority: entry.priority)
            if var old = wants[entry.cid] {
                // Asked again: answer again. A want-block upgrades a want-have, not the reverse.
                if want.type == .block { old.type = .block }
                old.sendDontHave = old.sendDontHave || want.sendDontHave
                if !old.queued {
                    old.queued = true
                    queue.append(entry.cid)
                }
                wants[entry.cid] = old
                continue
            }
            guard wants.count < limits.maxWants else {
                dropped += 1
                continue
            }
            wants[entry.cid] = want
            queue.append(entry.cid)
        }
        // Cancelled and answered CIDs leave stale queue slots; keep the queue within twice the
        // wants so a peer that wants and cancels without end cannot grow it.
        if queue.count > 2 * max(wants.count, 64) {
            var seen: Set<CID> = []
            queue = Deque(queue.filter { wants[$0]?.queued == true && seen.insert($0).inserted })
        }
    }

    /// A block came into the store: a parked want for it is answered at the next message.
    public mutating func blockAdded(_ cid: CID) {
        guard var want = wants[cid], !want.queued else { return }
        want.queued = true
        wants[cid] = want
        queue.append(cid)
    }

    /// The next answer message, or nil when nothing is waiting. `size` tells whether the store
    /// has a block (its size); `block` reads it (nil: gone since, answered as not had).
    public mutating func nextMessage(size: (CID) -> Int?, block: (CID) -> [UInt8]?) -> BitswapMessage? {
        var message = BitswapMessage()
        var bytes = 0
        var answers = 0
        while let cid = queue.first, answers < 4_096 {
            guard let want = wants[cid], want.queued else {
                queue.removeFirst()
                continue
            }
            let stored = size(cid)
            let sendBlock = stored.map { want.type == .block || $0 <= limits.replaceHaveWithBlock } ?? false
            if sendBlock, let stored {
                // One block always fits an empty message; otherwise stop before the cap.
                if !message.blocks.isEmpty, bytes + stored > limits.maxMessageBytes { break }
                queue.removeFirst()
                wants[cid] = nil
                answers += 1
                if let data = block(cid) {
                    message.blocks.append(.init(cid: cid, data: data))
                    bytes += data.count
                } else if want.sendDontHave {
                    message.presences.append((cid, .dontHave))
                }
                continue
            }
            queue.removeFirst()
            if stored != nil {
                wants[cid] = nil
                message.presences.append((cid, .have))
            } else if want.sendDontHave {
                wants[cid] = nil
                message.presences.append((cid, .dontHave))
            } else {
                wants[cid]?.queued = false  // parked: answered if the block comes
                continue
            }
            answers += 1
        }
        return message.isEmpty ? nil : message
    }
}
