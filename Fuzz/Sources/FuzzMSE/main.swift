import FuzzSupport
import PeerCrypto

/// MSE/PE handshakes fed hostile bytes: the first byte picks the side and how the rest is cut
/// into reads. 0: a responder fed the rest; 1: an initiator fed the rest; 2: a real initiator
/// and responder whose traffic the rest flips bits in (so the fuzzer gets past the key
/// exchange). Any input ends in a finished handshake or a typed error, never a trap, and a
/// handshake that finishes agrees on what was offered.
struct Deterministic: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let infoHash = [UInt8](repeating: 0xAB, count: 20)
let other = [UInt8](repeating: 0xCD, count: 20)

/// `bytes` cut into reads whose sizes follow `sizes` (cycled).
func reads(_ bytes: ArraySlice<UInt8>, sizes: UInt8) -> [ArraySlice<UInt8>] {
    var out: [ArraySlice<UInt8>] = []
    var rest = bytes
    let step = max(1, Int(sizes))
    while !rest.isEmpty {
        out.append(rest.prefix(step))
        rest = rest.dropFirst(step)
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMSE(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    guard bytes.count >= 2 else { return 0 }
    var random = Deterministic(state: UInt64(bytes[1]))
    let rest = bytes.dropFirst(2)
    switch bytes[0] % 3 {
    case 0:
        var responder = MSEResponder(
            infoHashes: [infoHash, other], allow: [.rc4, .plaintext], prefer: .rc4, using: &random)
        for read in reads(rest, sizes: bytes[1]) {
            guard let step = try? responder.receive(read) else { return 0 }
            if let result = step.result {
                precondition(result.infoHash == infoHash || result.infoHash == other)
                return 0
            }
        }
    case 1:
        var initiator = MSEInitiator(
            infoHash: infoHash, provide: .rc4, initialPayload: [1, 2, 3], using: &random)
        _ = initiator.start()
        for read in reads(rest, sizes: bytes[1]) {
            guard let step = try? initiator.receive(read) else { return 0 }
            if let result = step.result {
                precondition(result.method == .rc4)
                return 0
            }
        }
    default:
        // Flips: pairs of (offset into the initiator's stream, xor mask).
        var flips: [Int: UInt8] = [:]
        var pairs = rest.makeIterator()
        while let offset = pairs.next(), let mask = pairs.next() { flips[96 + Int(offset) * 3] = mask }
        var initiator = MSEInitiator(
            infoHash: infoHash, provide: [.rc4, .plaintext], initialPayload: Array("handshake".utf8),
            using: &random)
        var responder = MSEResponder(
            infoHashes: [infoHash], allow: [.rc4, .plaintext], prefer: .rc4, using: &random)
        var sent = 0
        func tamper(_ out: [UInt8]) -> [UInt8] {
            defer { sent += out.count }
            return out.enumerated().map { index, byte in byte ^ (flips[sent + index] ?? 0) }
        }
        var toResponder = tamper(initiator.start())
        for _ in 0..<4 {
            guard let answer = try? responder.receive(toResponder) else { return 0 }
            guard let step = try? initiator.receive(answer.output) else { return 0 }
            toResponder = tamper(step.output)
            if answer.result != nil, let result = step.result {
                precondition(result.infoHash == infoHash)
                return 0
            }
        }
    }
    return 0
}

runFuzzer(fuzzMSE)
