#!/usr/bin/env python3
"""Writes pubsub-rpc.json: one pubsub RPC serialized by py-libp2p 0.8.1's generated protobuf code
(`libp2p.pubsub.pb.rpc_pb2`, Google's protobuf runtime), with a message signed by py-libp2p's
Ed25519 key from the seed 01 02 … 20, as its Pubsub.publish signs ("libp2p-pubsub:" + the message
without signature and key). Run with the Python of py-libp2p's venv:

  .build/interop/pylibp2p/bin/python Tests/Vectors/gossip/make_vector.py > Tests/Vectors/gossip/pubsub-rpc.json
"""
import json

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

seed = bytes(range(1, 33))
keys = create_new_key_pair(seed)
author = ID.from_pubkey(keys.public_key)

message = rpc_pb2.Message(from_id=author.to_bytes(), data=b"hello, gossip", seqno=(7).to_bytes(8, "big"),
                          topicIDs=["peerstack/vectors"])
message.signature = keys.private_key.sign(b"libp2p-pubsub:" + message.SerializeToString())

rpc = rpc_pb2.RPC()
rpc.subscriptions.add(subscribe=True, topicid="peerstack/vectors")
rpc.subscriptions.add(subscribe=False, topicid="old")
rpc.publish.append(message)
rpc.control.ihave.add(topicID="peerstack/vectors", messageIDs=[b"id-1", b"id-2"])
rpc.control.iwant.add(messageIDs=[b"id-3"])
rpc.control.graft.add(topicID="peerstack/vectors")
rpc.control.prune.add(topicID="old", peers=[rpc_pb2.PeerInfo(peerID=author.to_bytes())], backoff=60)

print(json.dumps({
    "seed": seed.hex(),
    "author": author.to_base58(),
    "signature": message.signature.hex(),
    "signedBytes": (b"libp2p-pubsub:" + rpc_pb2.Message(
        from_id=message.from_id, data=message.data, seqno=message.seqno, topicIDs=message.topicIDs
    ).SerializeToString()).hex(),
    "rpc": rpc.SerializeToString().hex(),
}, indent=1))
