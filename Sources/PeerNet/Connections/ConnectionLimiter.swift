import NIOCore
import Synchronization

/// Admission control for the connections of one or more listeners: a global cap, a cap per IP,
/// and a pool of connections still in their handshake. When that pool is full, the oldest
/// handshaking connection is closed to make room, so sockets that connect and never speak cannot
/// lock honest peers out (they are also closed at ``ConnectionLimits/handshakeTimeout``).
/// Loopback addresses are exempt from the per-IP cap (local swarms and tests dial from one IP).
public final class ConnectionLimiter: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Most connections at once, handshaking or not.
        public var maxConnections: Int
        /// Most connections from one (non-loopback) IP address. nil: no cap.
        public var maxPerIP: Int?
        /// Most connections still in their handshake; a new one past it closes the oldest.
        public var maxHandshaking: Int

        public init(maxConnections: Int = 500, maxPerIP: Int? = 16, maxHandshaking: Int = 64) {
            self.maxConnections = maxConnections
            self.maxPerIP = maxPerIP
            self.maxHandshaking = maxHandshaking
        }
    }

    /// Counts, for statistics and tests.
    public struct Counts: Sendable, Hashable {
        public var connections: Int
        public var handshaking: Int
        /// Connections refused at admission, and handshaking ones closed to make room.
        public var refused: Int
        public var evicted: Int
    }

    private struct Entry {
        var channel: any Channel
        var ip: IPAddress?
        var sequence: UInt64
        var handshaking: Bool
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var perIP: [IPAddress: Int] = [:]
        var handshaking = 0
        var sequence: UInt64 = 0
        var refused = 0
        var evicted = 0
    }

    public let configuration: Configuration
    private let state = Mutex(State())

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var counts: Counts {
        state.withLock {
            Counts(
                connections: $0.entries.count, handshaking: $0.handshaking, refused: $0.refused,
                evicted: $0.evicted)
        }
    }

    /// Admits a new connection (false: close it). Closes the oldest handshaking connection when
    /// that makes room. Releases itself when the channel closes.
    public func admit(_ channel: any Channel) -> Bool {
        let ip = channel.remoteAddress.flatMap(IPAddress.init)
        let key = ObjectIdentifier(channel)
        var victim: (any Channel)?
        let admitted = state.withLock { state -> Bool in
            if let ip, !ip.isLoopback, let cap = configuration.maxPerIP, state.perIP[ip, default: 0] >= cap {
                state.refused += 1
                return false
            }
            if state.handshaking >= configuration.maxHandshaking
                || state.entries.count >= configuration.maxConnections
            {
                guard
                    let oldest = state.entries.filter({ $0.value.handshaking }).min(by: {
                        $0.value.sequence < $1.value.sequence
                    })
                else {
                    state.refused += 1
                    return false
                }
                victim = oldest.value.channel
                remove(oldest.key, from: &state)
                state.evicted += 1
            }
            state.sequence += 1
            state.entries[key] = Entry(channel: channel, ip: ip, sequence: state.sequence, handshaking: true)
            state.handshaking += 1
            if let ip { state.perIP[ip, default: 0] += 1 }
            return true
        }
        victim?.close(promise: nil)
        if admitted {
            channel.closeFuture.whenComplete { [self] _ in
                _ = state.withLock { remove(key, from: &$0) }
            }
        }
        return admitted
    }

    /// The connection's handshake is done: it no longer counts among the handshaking.
    public func handshakeCompleted(_ channel: any Channel) {
        state.withLock { state in
            let key = ObjectIdentifier(channel)
            guard let entry = state.entries[key], entry.handshaking else { return }
            state.entries[key]?.handshaking = false
            state.handshaking -= 1
        }
    }

    @discardableResult
    private func remove(_ key: ObjectIdentifier, from state: inout State) -> Bool {
        guard let entry = state.entries.removeValue(forKey: key) else { return false }
        if entry.handshaking { state.handshaking -= 1 }
        if let ip = entry.ip {
            let left = state.perIP[ip, default: 1] - 1
            state.perIP[ip] = left > 0 ? left : nil
        }
        return true
    }
}
