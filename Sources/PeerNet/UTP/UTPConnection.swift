import DequeModule
import NIOCore

/// Limits and tuning of a uTP connection (BEP 29). Times are in microseconds.
public struct UTPConfiguration: Sendable, Hashable {
    /// Payload bytes per packet (1,400 keeps a packet inside an Ethernet MTU with its headers).
    public var packetPayload = 1_400
    /// Most bytes we advertise as our receive window (out-of-order data is held within it).
    public var receiveWindow = 1 << 20
    /// Bytes queued for sending beyond which the connection is not writable.
    public var sendBufferLimit = 1 << 20
    /// LEDBAT's target queuing delay: 100 ms (BEP 29).
    public var targetDelay: UInt32 = 100_000
    /// LEDBAT's largest window growth per round trip, in bytes (BEP 29: 3,000).
    public var maxWindowIncreasePerRTT = 3_000
    /// The largest congestion window.
    public var maxWindow = 8 << 20
    /// The first retransmission timeout, before any round trip is measured (1 s), and its floor.
    public var initialTimeout: UInt64 = 1_000_000
    public var minTimeout: UInt64 = 500_000
    /// Timeouts in a row with nothing acknowledged after which the connection is given up:
    /// with the doubling from 500 ms, about 15 s of silence (libtorrent gives up on a packet sent
    /// `utp_num_resends` = 3 times).
    public var maxTimeouts = 4
    /// Times the SYN is sent again, `synInterval` apart, before the connection attempt fails:
    /// libtorrent's `utp_syn_resends` (2) and `utp_connect_timeout` (3 s), so a peer without uTP
    /// is tried over TCP after 3 s.
    public var synRetries = 2
    public var synInterval: UInt64 = 1_000_000
    /// Most packets held out of order beyond the next one expected.
    public var maxReorder = 1_024
    /// How long a closed sender waits, once its own FIN is acknowledged, with nothing heard from
    /// the peer, before it gives up waiting for the peer's FIN.
    public var finLinger: UInt64 = 5_000_000

    public init() {}
}

/// What a ``UTPConnection`` tells its driver.
public enum UTPEvent: Sendable, Equatable {
    /// The handshake completed (our SYN was acknowledged).
    case connected
    /// In-order stream bytes for the application.
    case deliver(ByteBuffer)
    /// The peer's FIN arrived and everything before it was delivered.
    case endOfStream
    /// The send buffer drained below half its limit after being full.
    case writable
    /// The connection is over: cleanly (nil), reset, or timed out.
    case closed(UTPError?)
}

/// One uTP connection (BEP 29) as a state machine: packets and timer ticks in, events and
/// packets out. No sockets, no clock (`now` is microseconds on any monotonic clock), no
/// randomness (connection IDs and the first sequence number are passed in).
///
/// Reliability: cumulative acks with the selective-ack extension, retransmission after a
/// timeout (RFC 6298's estimator, floor 500 ms, doubling) or after three duplicate acks or three
/// packets selectively acked past a hole. Congestion control: LEDBAT with BEP 29's 100 ms target
/// (one-way delay from `timestamp_difference`, base delay the minimum over two minutes), slow
/// start until the first loss or the delay nears the target, the window halved on loss and
/// shrunk to one packet on a timeout.
public struct UTPConnection: Sendable {
    private enum Phase: Sendable {
        case synSent
        case connected
        case closed
    }

    /// A packet we sent and the peer has not acknowledged.
    private struct Outgoing: Sendable {
        var packet: UTPPacket
        var sentAt: UInt64
        var transmissions: Int
        var needsResend: Bool
        var acked: Bool
        var size: Int { packet.payload.readableBytes }
    }

    public let configuration: UTPConfiguration
    /// The connection ID on packets we receive, and on packets we send.
    public let receiveID: UInt16
    public let sendID: UInt16
    private var phase: Phase

    // Sending.
    private var sequenceNumber: UInt16
    private var sendQueue = Deque<ByteBuffer>()
    private var queuedBytes = 0
    private var wasUnwritable = false
    /// Packets from `firstUnacked` on, in sequence order.
    private var inflight = Deque<Outgoing>()
    private var firstUnacked: UInt16
    private var bytesInFlight = 0
    /// Whether some packet may be marked for resending (spares a walk of `inflight` per call).
    private var resendPending = true
    /// Payload bytes sent and not yet acknowledged (in flight or waiting to be resent).
    private var outstandingBytes = 0
    private var window: Int
    private var slowStartThreshold: Int
    private var slowStart = true
    private var windowLimited = false
    private var peerWindow = 1 << 20
    private var duplicateAcks = 0
    private var lastAck: UInt16
    /// No further window cut for losses until acks pass this sequence number.
    private var lossRecoveryUntil: UInt16?
    private var fastResent: UInt16?
    private var closeRequested = false
    private var finSequence: UInt16?
    private var finAcked = false

    // Timing.
    private var rtt: UInt64 = 0
    private var rttVariance: UInt64 = 0
    private var timeout: UInt64
    private var retransmitAt: UInt64?
    private var lingerUntil: UInt64?
    private var timeoutsInARow = 0
    /// Base delay: the minimum delay sample of this minute and of the last.
    private var delayMinimum: (current: UInt32?, previous: UInt32?, since: UInt64) = (nil, nil, 0)
    /// Our reply delay sample (their timestamp against our clock on receipt).
    private var replyDifference: UInt32 = 0

    // Receiving.
    private var ackNumber: UInt16 = 0
    private var reorder: [UInt16: ByteBuffer] = [:]
    private var reorderBytes = 0
    private var reorderHighest: UInt16?
    private var ackPending = false
    private var peerFinSequence: UInt16?
    private var receivedFin = false
    /// Bytes delivered that the application has not consumed yet (the driver says), taken off
    /// the window we advertise.
    public var readBacklog = 0

    /// Packets sent again, for tests and statistics.
    public private(set) var retransmissions = 0

    /// Opens a connection: `receiveID` (random, unused on this socket) is sent in the SYN, and
    /// the peer will send with it; we send with `receiveID + 1` (BEP 29).
    public init(
        connecting receiveID: UInt16, sequenceNumber: UInt16, now: UInt64,
        configuration: UTPConfiguration = .init()
    ) {
        self.configuration = configuration
        self.receiveID = receiveID
        self.sendID = receiveID &+ 1
        self.phase = .synSent
        self.sequenceNumber = sequenceNumber
        self.firstUnacked = sequenceNumber
        self.lastAck = sequenceNumber &- 1
        self.timeout = configuration.initialTimeout
        self.window = configuration.packetPayload * 2
        self.slowStartThreshold = configuration.maxWindow
        let syn = UTPPacket(
            kind: .syn, connectionID: receiveID, sequenceNumber: sequenceNumber, ackNumber: 0)
        inflight.append(Outgoing(packet: syn, sentAt: 0, transmissions: 0, needsResend: true, acked: false))
        self.sequenceNumber &+= 1
        delayMinimum.since = now
    }

    /// Accepts a peer's SYN: we receive with its connection ID + 1 and send with its ID; our
    /// first packet (a STATE) acknowledges the SYN. Nil for a packet that is not a SYN.
    public init?(
        accepting syn: UTPPacket, sequenceNumber: UInt16, now: UInt64,
        configuration: UTPConfiguration = .init()
    ) {
        guard syn.kind == .syn else { return nil }
        self.configuration = configuration
        self.receiveID = syn.connectionID &+ 1
        self.sendID = syn.connectionID
        self.phase = .connected
        self.sequenceNumber = sequenceNumber
        self.firstUnacked = sequenceNumber
        self.lastAck = sequenceNumber &- 1
        self.timeout = configuration.initialTimeout
        self.window = configuration.packetPayload * 2
        self.slowStartThreshold = configuration.maxWindow
        self.ackNumber = syn.sequenceNumber
        // libtorrent's SYN advertises a window of 0: the peer's window is known from its next packet.
        self.replyDifference = UInt32(truncatingIfNeeded: now) &- syn.timestamp
        self.ackPending = true
        delayMinimum.since = now
    }

    // MARK: - Queries

    public var isConnected: Bool { if case .connected = phase { true } else { false } }
    public var isClosed: Bool { if case .closed = phase { true } else { false } }
    /// Whether the application may queue more bytes.
    public var isWritable: Bool { queuedBytes < configuration.sendBufferLimit && !closeRequested }
    /// The congestion window in bytes (LEDBAT), for tests and statistics.
    public var congestionWindow: Int { window }
    /// When ``timerFired(now:)`` is due next, if ever.
    public var deadline: UInt64? {
        switch (retransmitAt, lingerUntil) {
        case (let a?, let b?): min(a, b)
        case (let a?, nil): a
        case (nil, let b?): b
        case (nil, nil): nil
        }
    }
    /// Bytes the application queued that are not yet acknowledged.
    public var unacknowledgedBytes: Int { queuedBytes + outstandingBytes }

    // MARK: - Application

    /// Queues stream bytes; they go out as the windows allow (``outgoing(now:)``).
    public mutating func write(_ bytes: ByteBuffer) {
        guard !closeRequested, !isClosed, bytes.readableBytes > 0 else { return }
        sendQueue.append(bytes)
        queuedBytes += bytes.readableBytes
        if queuedBytes >= configuration.sendBufferLimit { wasUnwritable = true }
    }

    /// The application consumed held bytes (``readBacklog`` fell): tell the peer the window we
    /// advertise is open again with the next packet, even if it is only an ack.
    public mutating func announceWindow() {
        if isConnected { ackPending = true }
    }

    /// Ends our side: a FIN follows the bytes already queued.
    public mutating func close() {
        closeRequested = true
    }

    /// Drops the connection at once; the RESET packet to send, if the connection was open.
    public mutating func abort() -> UTPPacket? {
        guard !isClosed else { return nil }
        phase = .closed
        return UTPPacket(
            kind: .reset, connectionID: sendID, sequenceNumber: sequenceNumber, ackNumber: ackNumber)
    }

    // MARK: - Packets in

    /// A packet the driver matched to this connection (by address and connection ID).
    public mutating func received(_ packet: UTPPacket, now: UInt64) -> [UTPEvent] {
        var events: [UTPEvent] = []
        if packet.kind == .reset {
            guard !isClosed else { return [] }
            phase = .closed
            return [.closed(.reset)]
        }
        replyDifference = UInt32(truncatingIfNeeded: now) &- packet.timestamp
        if lingerUntil != nil { lingerUntil = now + configuration.finLinger }
        switch phase {
        case .closed:
            // Closed cleanly: the peer's FIN (or data before it) came again, so our last ack was
            // lost; acknowledge it once more.
            if receivedFin, packet.kind == .fin || packet.kind == .data { ackPending = true }
            return []
        case .synSent:
            guard packet.kind == .state, packet.ackNumber == firstUnacked else { return [] }
            phase = .connected
            ackNumber = packet.sequenceNumber &- 1
            events.append(.connected)
        case .connected:
            if packet.kind == .syn {
                // Our STATE for the SYN was lost: acknowledge it again.
                if packet.connectionID &+ 1 == receiveID { ackPending = true }
                return []
            }
        }
        peerWindow = Int(packet.windowSize)
        acknowledge(packet, now: now, events: &events)
        switch packet.kind {
        case .data, .fin:
            receive(packet, events: &events)
        default:
            break
        }
        checkFinished(now: now, events: &events)
        if wasUnwritable, queuedBytes < configuration.sendBufferLimit / 2 {
            wasUnwritable = false
            events.append(.writable)
        }
        return events
    }

    /// Takes the peer's cumulative and selective acks.
    private mutating func acknowledge(_ packet: UTPPacket, now: UInt64, events: inout [UTPEvent]) {
        let ack = packet.ackNumber
        // Acks must fall in [firstUnacked - 1, sequenceNumber - 1].
        let ahead = ack &- (firstUnacked &- 1)
        guard Int(ahead) <= inflight.count else { return }
        var ackedBytes = 0
        var newest: UInt64?
        for _ in 0..<Int(ahead) {
            guard let first = inflight.popFirst() else { break }
            firstUnacked &+= 1
            // Only a cumulative ack of the FIN ends our side (a selective one leaves holes).
            if first.packet.kind == .fin { finAcked = true }
            if !first.acked {
                ackedBytes += first.size
                outstandingBytes -= first.size
                if !first.needsResend { bytesInFlight -= first.size }
                if first.transmissions == 1 { newest = max(newest ?? 0, first.sentAt) }
            }
        }
        var sackedPast = 0
        if let mask = packet.selectiveAck {
            for (byteIndex, byte) in mask.enumerated() where byte != 0 {
                for bit in 0..<8 where byte & (1 << bit) != 0 {
                    let index = Int(ack &+ 2 &+ UInt16(byteIndex * 8 + bit) &- firstUnacked)
                    guard index < inflight.count else { continue }
                    sackedPast += 1
                    if !inflight[index].acked {
                        inflight[index].acked = true
                        ackedBytes += inflight[index].size
                        outstandingBytes -= inflight[index].size
                        if !inflight[index].needsResend { bytesInFlight -= inflight[index].size }
                        inflight[index].needsResend = false
                        if inflight[index].transmissions == 1 {
                            newest = max(newest ?? 0, inflight[index].sentAt)
                        }
                    }
                }
            }
        }
        bytesInFlight = max(0, bytesInFlight)
        if let newest, now >= newest { sampleRTT(now - newest) }
        if ahead > 0 {
            timeoutsInARow = 0
            duplicateAcks = 0
            fastResent = nil
            retransmitAt = inflight.isEmpty ? nil : now + timeout
            if let until = lossRecoveryUntil, Self.before(until, firstUnacked) || until == firstUnacked &- 1 {
                lossRecoveryUntil = nil
            }
        } else if packet.kind == .state, ack == lastAck, !inflight.isEmpty, packet.selectiveAck == nil {
            duplicateAcks += 1
        }
        lastAck = ack
        if ackedBytes > 0 { grow(ackedBytes, delay: packet.timestampDifference, now: now) }
        // Fast retransmit: three duplicate acks, or three packets acknowledged past a hole.
        if let first = inflight.first, !first.acked, fastResent != firstUnacked,
            duplicateAcks >= 3 || sackedPast >= 3
        {
            fastResent = firstUnacked
            inflight[0].needsResend = true
            resendPending = true
            bytesInFlight -= inflight[0].size
            bytesInFlight = max(0, bytesInFlight)
            lost()
        }
    }

    private mutating func sampleRTT(_ sample: UInt64) {
        if rtt == 0 {
            rtt = sample
            rttVariance = sample / 2
        } else {
            let delta = rtt > sample ? rtt - sample : sample - rtt
            rttVariance = (3 * rttVariance + delta) / 4
            rtt = (7 * rtt + sample) / 8
        }
        timeout = max(rtt + 4 * rttVariance, configuration.minTimeout)
    }

    /// LEDBAT (BEP 29): grow or shrink the window by how far the queuing delay is from target.
    private mutating func grow(_ acked: Int, delay sample: UInt32, now: UInt64) {
        var ourDelay: UInt32 = 0
        if sample != 0 {
            if now >= delayMinimum.since + 60_000_000 {
                delayMinimum = (nil, delayMinimum.current, now)
            }
            delayMinimum.current = Self.wrappingMin(delayMinimum.current, sample)
            let base = Self.wrappingMin(delayMinimum.current, delayMinimum.previous) ?? sample
            let difference = sample &- base
            ourDelay = difference < 0x8000_0000 ? difference : 0
        }
        let target = configuration.targetDelay
        if slowStart {
            if ourDelay > target / 2 || window >= slowStartThreshold {
                slowStart = false
            } else {
                if windowLimited { window = min(window + acked, configuration.maxWindow) }
                return
            }
        }
        let offTarget = Double(Int64(target) - Int64(min(ourDelay, target * 4)))
        let delayFactor = offTarget / Double(target)
        let windowFactor = Double(min(acked, window)) / Double(max(window, acked))
        let gain = Double(configuration.maxWindowIncreasePerRTT) * delayFactor * windowFactor
        if gain > 0, !windowLimited { return }  // grow only a window that is used
        window = min(max(window + Int(gain), configuration.packetPayload), configuration.maxWindow)
    }

    /// A packet was lost: halve the window once per window of data.
    private mutating func lost() {
        retransmissions += 1
        guard lossRecoveryUntil == nil else { return }
        lossRecoveryUntil = sequenceNumber &- 1
        window = max(window / 2, configuration.packetPayload)
        slowStartThreshold = window
        slowStart = false
    }

    /// Puts a data or FIN packet in order and delivers what became contiguous.
    private mutating func receive(_ packet: UTPPacket, events: inout [UTPEvent]) {
        ackPending = true
        let seq = packet.sequenceNumber
        if packet.kind == .fin, peerFinSequence == nil { peerFinSequence = seq }
        let distance = seq &- ackNumber  // 1: the next expected
        guard distance != 0, distance < 0x8000 else { return }  // a duplicate: ack it again
        if distance == 1 {
            deliver(packet, events: &events)
            while let next = reorder.removeValue(forKey: ackNumber &+ 1) {
                reorderBytes -= next.readableBytes
                ackNumber &+= 1
                if next.readableBytes > 0 { events.append(.deliver(next)) }
                if ackNumber == peerFinSequence { finishReceiving(events: &events) }
            }
            if reorder.isEmpty { reorderHighest = nil }
            return
        }
        guard Int(distance) <= configuration.maxReorder, reorder[seq] == nil,
            reorderBytes + packet.payload.readableBytes <= configuration.receiveWindow
        else { return }
        // A copy: the payload is a slice of a read buffer that held other datagrams too, and a
        // held packet should pin no more memory than its own bytes.
        reorder[seq] = ByteBuffer(bytes: packet.payload.readableBytesView)
        reorderBytes += packet.payload.readableBytes
        if let highest = reorderHighest, !Self.before(highest, seq) {} else { reorderHighest = seq }
    }

    private mutating func deliver(_ packet: UTPPacket, events: inout [UTPEvent]) {
        ackNumber = packet.sequenceNumber
        if packet.payload.readableBytes > 0 { events.append(.deliver(packet.payload)) }
        if ackNumber == peerFinSequence { finishReceiving(events: &events) }
    }

    private mutating func finishReceiving(events: inout [UTPEvent]) {
        guard !receivedFin else { return }
        receivedFin = true
        // Nothing after the FIN counts.
        reorder.removeAll()
        reorderBytes = 0
        events.append(.endOfStream)
    }

    private mutating func checkFinished(now: UInt64, events: inout [UTPEvent]) {
        guard finAcked, !isClosed else { return }
        if receivedFin {
            phase = .closed
            retransmitAt = nil
            lingerUntil = nil
            events.append(.closed(nil))
        } else if lingerUntil == nil {
            lingerUntil = now + configuration.finLinger
        }
    }

    // MARK: - Timers

    /// The retransmission or linger timer fired (call when `now >= deadline`).
    public mutating func timerFired(now: UInt64) -> [UTPEvent] {
        if let linger = lingerUntil, now >= linger, !isClosed {
            phase = .closed
            return [.closed(nil)]
        }
        guard let at = retransmitAt, now >= at, !isClosed else { return [] }
        guard !inflight.isEmpty else {
            retransmitAt = nil
            return []
        }
        timeoutsInARow += 1
        if case .synSent = phase, inflight[0].transmissions > configuration.synRetries {
            phase = .closed
            return [.closed(.timedOut("waiting for the peer to answer our SYN"))]
        }
        if timeoutsInARow > configuration.maxTimeouts {
            phase = .closed
            return [.closed(.timedOut("with \(inflight.count) packets unacknowledged"))]
        }
        if case .synSent = phase {
            retransmitAt = now + configuration.synInterval
            inflight[0].needsResend = true
            resendPending = true
            return []
        }
        timeout = min(timeout * 2, 60_000_000)
        retransmissions += 1
        // Go back: everything unacknowledged is sent again as the (one-packet) window allows.
        slowStartThreshold = max(window / 2, configuration.packetPayload * 2)
        window = configuration.packetPayload
        slowStart = true
        lossRecoveryUntil = nil
        for index in inflight.indices where !inflight[index].acked { inflight[index].needsResend = true }
        resendPending = true
        bytesInFlight = 0
        retransmitAt = now + timeout
        return []
    }

    // MARK: - Packets out

    /// Everything to send now: packets to retransmit, new data within the windows, the FIN, and
    /// an ack if nothing else carries one.
    public mutating func outgoing(now: UInt64) -> [UTPPacket] {
        if isClosed {
            // The ack of the peer's FIN, after we closed on it.
            guard receivedFin, ackPending else { return [] }
            ackPending = false
            return [
                stamp(
                    UTPPacket(
                        kind: .state, connectionID: sendID, sequenceNumber: sequenceNumber,
                        ackNumber: ackNumber),
                    now: now)
            ]
        }
        var packets: [UTPPacket] = []
        let sendWindow = min(window, max(peerWindow, 0))
        windowLimited = false
        // Retransmissions first, oldest first.
        var blocked = false
        for index in inflight.indices where resendPending && inflight[index].needsResend {
            let size = inflight[index].size
            if bytesInFlight > 0, bytesInFlight + size > sendWindow {
                windowLimited = true
                blocked = true
                break
            }
            inflight[index].needsResend = false
            inflight[index].transmissions += 1
            inflight[index].sentAt = now
            bytesInFlight += size
            packets.append(stamp(inflight[index].packet, now: now))
            if retransmitAt == nil { retransmitAt = now + timeout }
        }
        if !blocked { resendPending = false }
        guard case .connected = phase else { return packets }
        // New data.
        while queuedBytes > 0, inflight.count < 0x7000 {
            let size = min(queuedBytes, configuration.packetPayload)
            if bytesInFlight > 0, bytesInFlight + size > sendWindow {
                windowLimited = true
                break
            }
            let payload = dequeue(size)
            let packet = UTPPacket(
                kind: .data, connectionID: sendID, sequenceNumber: sequenceNumber, ackNumber: ackNumber,
                payload: payload)
            sequenceNumber &+= 1
            inflight.append(
                Outgoing(packet: packet, sentAt: now, transmissions: 1, needsResend: false, acked: false))
            bytesInFlight += size
            outstandingBytes += size
            packets.append(stamp(packet, now: now))
            if retransmitAt == nil { retransmitAt = now + timeout }
        }
        if closeRequested, queuedBytes == 0, finSequence == nil {
            let fin = UTPPacket(
                kind: .fin, connectionID: sendID, sequenceNumber: sequenceNumber, ackNumber: ackNumber)
            finSequence = sequenceNumber
            sequenceNumber &+= 1
            inflight.append(
                Outgoing(packet: fin, sentAt: now, transmissions: 1, needsResend: false, acked: false))
            packets.append(stamp(fin, now: now))
            if retransmitAt == nil { retransmitAt = now + timeout }
        }
        if ackPending, packets.isEmpty {
            packets.append(
                stamp(
                    UTPPacket(
                        kind: .state, connectionID: sendID, sequenceNumber: sequenceNumber,
                        ackNumber: ackNumber),
                    now: now))
        }
        ackPending = false
        return packets
    }

    /// Fills in what every packet carries at the moment it leaves: the current ack, the
    /// timestamps, our window and the selective acks.
    private func stamp(_ packet: UTPPacket, now: UInt64) -> UTPPacket {
        var packet = packet
        packet.timestamp = UInt32(truncatingIfNeeded: now)
        packet.timestampDifference = replyDifference
        packet.windowSize = UInt32(max(0, configuration.receiveWindow - reorderBytes - readBacklog))
        if packet.kind != .syn { packet.ackNumber = ackNumber }
        packet.selectiveAck = packet.kind == .syn ? nil : selectiveAckMask()
        return packet
    }

    /// Bit `i` set when packet `ackNumber + 2 + i` is held out of order; nil when none is.
    private func selectiveAckMask() -> [UInt8]? {
        guard !reorder.isEmpty, let highest = reorderHighest else { return nil }
        let span = min(Int(highest &- ackNumber &- 1), UTPPacket.maxSelectiveAck * 8)
        guard span > 0 else { return nil }
        var mask = [UInt8](repeating: 0, count: min(((span + 31) / 32) * 4, UTPPacket.maxSelectiveAck))
        for bit in 0..<min(span, mask.count * 8) where reorder[ackNumber &+ 2 &+ UInt16(bit)] != nil {
            mask[bit / 8] |= 1 << (bit % 8)
        }
        return mask
    }

    /// The next `count` queued bytes as one buffer.
    private mutating func dequeue(_ count: Int) -> ByteBuffer {
        queuedBytes -= count
        if var first = sendQueue.first, first.readableBytes >= count {
            let slice = first.readSlice(length: count) ?? ByteBuffer()
            if first.readableBytes == 0 { sendQueue.removeFirst() } else { sendQueue[0] = first }
            return slice
        }
        var out = ByteBuffer()
        out.reserveCapacity(count)
        var needed = count
        while needed > 0, var first = sendQueue.popFirst() {
            let take = min(needed, first.readableBytes)
            var slice = first.readSlice(length: take) ?? ByteBuffer()
            out.writeBuffer(&slice)
            needed -= take
            if first.readableBytes > 0 { sendQueue.prepend(first) }
        }
        return out
    }

    // MARK: - Sequence arithmetic

    /// Whether `a` comes before `b` modulo 2^16.
    static func before(_ a: UInt16, _ b: UInt16) -> Bool {
        let distance = b &- a
        return distance != 0 && distance < 0x8000
    }

    /// The smaller of two 32-bit delays, one of which may be missing.
    static func wrappingMin(_ a: UInt32?, _ b: UInt32?) -> UInt32? {
        guard let a else { return b }
        guard let b else { return a }
        return (b &- a) < 0x8000_0000 ? a : b
    }
}

extension UTPConnection: CustomStringConvertible {
    /// The connection's state in one line, for logs and failing tests.
    public var description: String {
        "uTP \(receiveID)/\(sendID) \(phase) seq \(sequenceNumber) ack \(ackNumber) unacked from \(firstUnacked): "
            + "\(inflight.count) packets (\(bytesInFlight) B in flight, \(inflight.filter(\.needsResend).count) to resend), "
            + "window \(window) (peer \(peerWindow)), queued \(queuedBytes), held \(reorder.count), "
            + "rto \(timeout / 1000) ms, fin sent \(finSequence != nil) acked \(finAcked) received \(receivedFin), "
            + "next timer \(deadline.map(String.init) ?? "none")"
    }
}
