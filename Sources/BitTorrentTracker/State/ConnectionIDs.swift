import Crypto
import PeerNet

/// BEP 15 connection IDs without per-client state: the ID is a MAC (HMAC-SHA256, first 8 bytes)
/// of the client's IP address and the current time window, under a key made at start. The
/// port is left out, as opentracker does: the ID proves the client receives packets at that
/// address (no spoofed-source amplification), and clients that announce from a fresh socket
/// each time keep working.
/// An ID is accepted in its own window and the next, so it lives one to two windows — BEP 15
/// asks clients to reconnect after one minute and trackers to accept IDs for two.
public struct ConnectionIDs: Sendable {
    /// HMAC state with the key already absorbed; copied for each ID (the key schedule once).
    private let keyed: HMAC<SHA256>
    private let window: UInt32

    /// `window`: seconds a window lasts (60 by default).
    public init(key: SymmetricKey = SymmetricKey(size: .bits256), window: Int = 60) {
        keyed = HMAC<SHA256>(key: key)
        self.window = UInt32(clamping: max(1, window))
    }

    /// The ID to give `endpoint` at `now` (seconds).
    public func make(for endpoint: Endpoint, now: UInt32) -> UInt64 {
        mac(endpoint, window: now / window)
    }

    /// Whether `id` was given to `endpoint` in this window or the one before.
    public func accepts(_ id: UInt64, from endpoint: Endpoint, now: UInt32) -> Bool {
        let current = now / window
        return id == mac(endpoint, window: current)
            || (current > 0 && id == mac(endpoint, window: current - 1))
    }

    private func mac(_ endpoint: Endpoint, window: UInt32) -> UInt64 {
        // Three words, no padding: the window, then the address as 16 bytes (IPv4 mapped).
        var message: (UInt64, UInt64, UInt64)
        if let address = endpoint.ip.v4 {
            message = (0, 0, UInt64(0xFFFF) << 32 | UInt64(address))
        } else {
            message = (0, endpoint.ip.high, endpoint.ip.low)
        }
        message.0 = UInt64(window)
        var hmac = keyed
        withUnsafeBytes(of: &message) { hmac.update(data: $0) }
        let code = hmac.finalize()
        return code.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}
