import FuzzSupport
import Gossip

/// Pubsub RPCs from hostile bytes: an accepted RPC encodes to bytes that decode to the same RPC,
/// each message's signature check ends in an author or a typed error, and a GossipSub router fed
/// the RPC (then a heartbeat) never traps. Any input ends in a value or a typed error.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzGossip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    guard let rpc = try? PubSubRPC.decode(bytes) else { return 0 }
    precondition((try? PubSubRPC.decode(rpc.encoded())) == rpc, "re-encoding changed an RPC")
    for message in rpc.messages { _ = try? message.verifiedAuthor() }
    var configuration = GossipSubConfiguration()
    configuration.signaturePolicy = .strictNoSign
    var router = GossipSubRouter<NodeNumber>(configuration: configuration, seed: 1)
    _ = router.addPeer(NodeNumber(1), protocol: .meshsub11, outbound: false, now: .zero)
    _ = router.addPeer(NodeNumber(2), protocol: .floodsub, outbound: true, now: .zero)
    for topic in rpc.subscriptions.prefix(4).map(\.topic) { _ = router.subscribe(topic, now: .zero) }
    _ = router.receive(rpc, from: NodeNumber(1), now: .seconds(1))
    _ = router.receive(rpc, from: NodeNumber(2), now: .seconds(1))
    _ = router.heartbeat(now: .seconds(2))
    return 0
}

runFuzzer(fuzzGossip)
