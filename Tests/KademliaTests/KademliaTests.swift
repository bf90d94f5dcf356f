import Kademlia
import TestSupport
import Testing

typealias ID160 = KademliaID<Bits160>
typealias Node = Contact<Bits160, Int>

struct KademliaIDTests {
    @Test func bytesDistanceAndPrefixes() throws {
        let bytes = (0..<20).map { UInt8($0 * 13 & 0xFF) }
        let id = try #require(ID160(bytes: bytes))
        #expect(id.bytes == bytes)
        #expect(ID160(bytes: bytes + [0]) == nil)
        #expect(id.distance(to: id) == .zero && ID160.zero.leadingZeroBitCount == 160)
        var flipped = bytes
        flipped[2] ^= 0x10  // bit 19
        let other = try #require(ID160(bytes: flipped))
        #expect(id.commonPrefixLength(with: other) == 19)
        #expect(id.distance(to: other).bytes == [0, 0, 0x10] + Array(repeating: 0, count: 17))
        // 128- and 256-bit networks share the code.
        let wide = try #require(KademliaID<Bits256>(bytes: Array(repeating: 0xFF, count: 32)))
        #expect(wide.leadingZeroBitCount == 0 && KademliaID<Bits256>.zero.leadingZeroBitCount == 256)
        #expect(KademliaID<Bits128>(bytes: Array(repeating: 1, count: 16))?.bytes.count == 16)
    }

    @Test func randomIDsInABucketHaveThatPrefix() {
        var generator = SeededGenerator(state: 1)
        let own = ID160.random(using: &generator)
        for prefix in [0, 1, 7, 63, 64, 65, 127, 128, 150, 159] {
            let id = own.randomInBucket(prefix, using: &generator)
            #expect(own.commonPrefixLength(with: id) == prefix, "prefix \(prefix)")
        }
        let random = ID160.random(using: &generator)
        #expect(random.bytes.count == 20)
    }
}

struct RoutingTableTests {
    @Test func bucketsSplitAroundTheOwnIDAndHoldTheClosest() {
        var generator = SeededGenerator(state: 2)
        let own = ID160.random(using: &generator)
        var table = RoutingTable<Bits160, Int>(ownID: own)
        var all: [ID160] = []
        for index in 0..<2_000 {
            let id = ID160.random(using: &generator)
            all.append(id)
            var contact = Node(id: id, address: index, lastSeen: .zero)
            contact.answered = true
            table.insert(contact, now: .seconds(1))
        }
        #expect(table.buckets.count > 6)
        for (index, bucket) in table.buckets.enumerated() {
            #expect(bucket.contacts.count <= 8)
            for contact in bucket.contacts { #expect(table.bucketIndex(for: contact.id) == index) }
        }
        // The nearest nodes to our own ID are all kept (only far buckets drop anyone).
        let nearest = all.sorted { own.isCloser($0, than: $1) }.prefix(8)
        #expect(Set(table.closest(to: own, count: 8, now: .seconds(1)).map(\.id)) == Set(nearest))
    }

    @Test func fullBucketsPingBeforeEvictingAndUseReplacements() {
        let own = ID160.zero
        var table = RoutingTable<Bits160, Int>(ownID: own)
        var generator = SeededGenerator(state: 3)
        // Far bucket: IDs with the first bit set. Split once so bucket 0 is not the own bucket.
        let near = own.randomInBucket(5, using: &generator)
        table.insert(Node(id: near, address: 999, lastSeen: .zero), now: .zero)
        var far: [ID160] = []
        for index in 0..<8 {
            let id = own.randomInBucket(0, using: &generator)
            far.append(id)
            var contact = Node(id: id, address: index, lastSeen: .zero)
            contact.answered = true
            let outcome = table.insert(contact, now: .seconds(10))
            #expect(outcome == .added)
        }
        #expect(table.buckets.count == 2)  // split once: 8 far + 1 near
        let newcomer = Node(id: own.randomInBucket(0, using: &generator), address: 100, lastSeen: .zero)
        // All good: the newcomer waits in the replacement cache.
        let waiting = table.insert(newcomer, now: .seconds(20))
        #expect(waiting == .cached)
        // 20 minutes later the oldest is questionable: ping it before evicting.
        guard case .pingBeforeEvicting(let oldest) = table.insert(newcomer, now: .seconds(1_300)) else {
            Issue.record("expected a ping")
            return
        }
        #expect(oldest.id == far[0])
        table.failed(oldest.id, now: .seconds(1_302))
        #expect(table.contact(oldest.id) != nil)  // one failure: questionable, still there
        table.failed(oldest.id, now: .seconds(1_304))
        #expect(table.contact(oldest.id) == nil)
        #expect(table.contact(newcomer.id)?.address == 100)
        // Same ID from another address is not taken.
        let moved = table.insert(Node(id: far[1], address: 555, lastSeen: .zero), now: .seconds(1_305))
        let ownself = table.insert(Node(id: own, address: 1, lastSeen: .zero), now: .zero)
        #expect(moved == .ignored && ownself == .ignored)
    }
}

/// A small network in memory: every node's table filled from every other node, then lookups
/// driven by the state machine against it.
struct LookupTests {
    let ids: [ID160]
    let tables: [RoutingTable<Bits160, Int>]

    init() {
        var generator = SeededGenerator(state: 4)
        ids = (0..<400).map { _ in ID160.random(using: &generator) }
        var tables: [RoutingTable<Bits160, Int>] = []
        for (index, id) in ids.enumerated() {
            var table = RoutingTable<Bits160, Int>(ownID: id)
            for (other, otherID) in ids.enumerated() where other != index {
                var contact = Node(id: otherID, address: other, lastSeen: .zero)
                contact.answered = true
                table.insert(contact, now: .zero)
            }
            tables.append(table)
        }
        self.tables = tables
    }

    func run(target: ID160, from start: Int, silent: Set<Int> = []) -> Lookup<Bits160, Int> {
        var now = KademliaTime.zero
        var lookup = Lookup(
            target: target, seeds: tables[start].closest(to: target, count: 8, now: now), now: now)
        var pending = lookup.start(now: now)
        var rounds = 0
        while !lookup.isFinished && rounds < 1_000 {
            rounds += 1
            now += .milliseconds(50)
            var next: [LookupAction<Bits160, Int>] = []
            for case .query(let contact) in pending where !silent.contains(contact.address) {
                let named = tables[contact.address].closest(to: target, count: 8, now: now)
                next += lookup.answered(by: contact.id, nodes: named, now: now)
            }
            if next.isEmpty, let deadline = lookup.nextDeadline {
                now = max(now, deadline)
                next = lookup.timerFired(now: now).actions
            }
            pending = next
        }
        return lookup
    }

    @Test func lookupsFindTheTrueClosestNodes() {
        var generator = SeededGenerator(state: 5)
        for round in 0..<20 {
            let target = ID160.random(using: &generator)
            let lookup = run(target: target, from: round * 7 % ids.count)
            let truth = ids.sorted { target.isCloser($0, than: $1) }.prefix(8)
            #expect(lookup.isFinished)
            #expect(lookup.closest.map(\.id) == Array(truth))
            #expect(
                lookup.hops <= 4 && lookup.queriesSent < 60,
                "hops \(lookup.hops), queries \(lookup.queriesSent)")
        }
    }

    @Test func silentNodesTimeOutAndTheLookupStillConverges() {
        var generator = SeededGenerator(state: 6)
        let silent = Set((0..<400).filter { $0 % 5 == 0 })  // a fifth of the network is gone
        let target = ID160.random(using: &generator)
        let lookup = run(target: target, from: 1, silent: silent)
        let truth = ids.enumerated().filter { !silent.contains($0.offset) }.map(\.element)
            .sorted { target.isCloser($0, than: $1) }.prefix(8)
        #expect(lookup.isFinished)
        #expect(lookup.closest.map(\.id) == Array(truth))
        #expect(lookup.failures > 0)
    }

    @Test func aStalledQueryFreesItsSlotButTheLookupWaitsForItsAnswer() throws {
        var generator = SeededGenerator(state: 7)
        let target = ID160.random(using: &generator)
        let truth = ids.sorted { target.isCloser($0, than: $1) }
        let closestIndex = try #require(ids.firstIndex(of: truth[0]))
        var lookup = Lookup(
            target: target,
            seeds: tables[closestIndex == 0 ? 1 : 0].closest(to: target, count: 8, now: .zero),
            now: .zero)
        var asked = lookup.start(now: .zero)
        var stalledOnce = false
        var rounds = 0
        while !lookup.isFinished && rounds < 200 {
            rounds += 1
            var next: [LookupAction<Bits160, Int>] = []
            for case .query(let contact) in asked {
                if contact.address == closestIndex && !stalledOnce {
                    // The closest node's first answer is lost: its retransmission is pending.
                    stalledOnce = true
                    let others = lookup.stalled(contact.id, now: .seconds(2))
                    #expect(!others.isEmpty || lookup.isFinished == false, "a stalled node frees its slot")
                    next += others
                    continue
                }
                next += lookup.answered(
                    by: contact.id, nodes: tables[contact.address].closest(to: target, count: 8, now: .zero),
                    now: .seconds(1))
            }
            asked = next
            if asked.isEmpty { break }
        }
        #expect(stalledOnce && !lookup.isFinished, "the lookup must wait for the stalled closest node")
        _ = lookup.answered(by: truth[0], nodes: [], now: .seconds(4))
        #expect(lookup.isFinished && lookup.closest.first?.id == truth[0])
    }
}

struct KeyValueStoreTests {
    @Test func valuesExpireOursAreRepublished() {
        var store = KeyValueStore<Int, String>(
            capacity: 2, timeToLive: .seconds(100), republishInterval: .seconds(60))
        let stored = [
            store.put(1, "theirs", now: .zero), store.put(2, "ours", ours: true, now: .zero),
            store.put(3, "full", now: .zero),
        ]
        #expect(stored == [true, true, false])
        #expect(store.get(1, now: .seconds(99)) == "theirs")
        #expect(store.get(1, now: .seconds(100)) == nil)
        let early = store.dueForRepublish(now: .seconds(30))
        let due = store.dueForRepublish(now: .seconds(61))
        let again = store.dueForRepublish(now: .seconds(62))
        #expect(early.isEmpty && due.map(\.1) == ["ours"] && again.isEmpty)
        let expired = store.expire(now: .seconds(500))
        #expect(expired == 1)
        #expect(store.get(2, now: .seconds(500)) == "ours")
    }
}
