import FuzzSupport
import Gossip
import PeerNet

/// memberlist packets and streams from hostile bytes: every packet ends in messages or a typed
/// error; each accepted message re-encodes to bytes that decode to it again; a member fed the
/// messages (then its timers) never traps; a stream read whole or cut anywhere is a message, "need
/// more" or a typed error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMemberlist(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let framing = MemberlistFraming(compression: false, checksum: false)
    var member = SWIMMember(
        configuration: SWIMConfiguration(name: "fuzz", advertise: Endpoint(ip: .loopbackV4, port: 7946)),
        now: .zero, seed: 1)
    let from = Endpoint(ip: .loopbackV4, port: 7947)
    if let parts = try? framing.messages(inPacket: bytes) {
        var messages: [MemberlistMessage] = []
        for case .success(let message) in parts {
            if case .user = message {
            } else {
                let again = try? MemberlistCodec.decode(MemberlistCodec.encode(message))
                precondition(again == message, "re-encoding changed \(message)")
            }
            messages.append(message)
        }
        _ = member.receive(messages, from: from, now: .seconds(1))
        _ = member.tick(now: .seconds(3))
        _ = member.tick(now: .seconds(40))
    }
    if case .message(.pushPull(let remote), _)? = try? framing.streamMessage(bytes) {
        _ = member.merge(remote, now: .seconds(41))
        _ = member.tick(now: .seconds(80))
    }
    var progress = MemberlistCodec.PushPullProgress()
    for cut in stride(from: 1, through: bytes.count, by: max(1, bytes.count / 8)) {
        if case .message? = try? framing.streamMessage(Array(bytes.prefix(cut)), progress: &progress) {
            break
        }
    }
    _ = try? LZW.decompress(bytes, limit: 1 << 16)
    return 0
}

runFuzzer(fuzzMemberlist)
