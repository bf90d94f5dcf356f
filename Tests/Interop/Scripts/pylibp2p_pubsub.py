#!/usr/bin/env python3
"""A py-libp2p 0.8.1 GossipSub node driven over standard input and output, for gossip_interop.py.
Run with the Python of the venv that holds py-libp2p (trio).

  pylibp2p_pubsub.py

It listens on 127.0.0.1 and prints {"listening": ADDRESS, "id": PEER_ID}. Then each line on
standard input is a JSON command, and each answer or event is a JSON line on standard output:
  {"connect": ADDRESS}            -> {"connected": ADDRESS} or {"error": ...}
  {"subscribe": TOPIC}            -> {"subscribed": TOPIC}; then {"message": {...}} per message
  {"publish": [TOPIC, TEXT]}      -> {"published": TOPIC}
  {"peers": TOPIC}                -> {"peers": [PEER_ID, ...]} (peers known to subscribe)
  {"quit": true}                  -> the process exits
The heartbeat runs every second (py-libp2p's default is two minutes), and its eclipse protection
(at least 3 IP addresses in a mesh) is off: every peer here is on 127.0.0.1.
"""
import json
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service.context import background_trio_service


def emit(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def relay(subscription, topic):
    async for message in subscription:
        emit({"message": {
            "topic": topic,
            "data": message.data.decode(errors="replace"),
            "from": ID(message.from_id).to_base58() if message.from_id else None,
            "seqno": message.seqno.hex(),
        }})


async def main():
    host = new_host()
    gossipsub = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID], degree=6, degree_low=4, degree_high=12,
        heartbeat_interval=1, eclipse_protection_enabled=False)
    pubsub = Pubsub(host, gossipsub)
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(gossipsub):
            await pubsub.wait_until_ready()
            address = str(host.get_addrs()[0])
            if "/p2p/" not in address:
                address += "/p2p/" + host.get_id().to_base58()
            emit({"listening": address, "id": host.get_id().to_base58()})
            stdin = trio.lowlevel.FdStream(0)
            buffered = b""
            async with trio.open_nursery() as nursery:
                while True:
                    chunk = await stdin.receive_some(65536)
                    if not chunk:
                        break
                    buffered += chunk
                    while b"\n" in buffered:
                        line, buffered = buffered.split(b"\n", 1)
                        if not line.strip():
                            continue
                        command = json.loads(line)
                        try:
                            if "connect" in command:
                                with trio.fail_after(30):
                                    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(command["connect"])))
                                emit({"connected": command["connect"]})
                            elif "subscribe" in command:
                                subscription = await pubsub.subscribe(command["subscribe"])
                                nursery.start_soon(relay, subscription, command["subscribe"])
                                emit({"subscribed": command["subscribe"]})
                            elif "publish" in command:
                                topic, text = command["publish"]
                                await pubsub.publish(topic, text.encode())
                                emit({"published": topic})
                            elif "peers" in command:
                                peers = pubsub.peer_topics.get(command["peers"], set())
                                emit({"peers": sorted(peer.to_base58() for peer in peers)})
                            elif "quit" in command:
                                nursery.cancel_scope.cancel()
                                return
                        except Exception as error:  # noqa: BLE001
                            emit({"error": f"{type(error).__name__}: {error}"})
                nursery.cancel_scope.cancel()


trio.run(main)
