#!/usr/bin/env python3
"""Bitcoin P2P messages made by python-bitcoinlib, for the byte-for-byte interop test.

  btc_messages.py VECTORS_DIR     JSON {name: hex of the whole regtest message}
  btc_messages.py parse HEX       JSON description of a message python-bitcoinlib parsed

The contents are fixed and mirrored by Tests/Interop/BlockchainInteropTests.swift.
"""
import json
import os
import sys

import bitcoin
from bitcoin.core import CBlock, CTransaction, x
from bitcoin.core.serialize import VarIntSerializer
from bitcoin.messages import (MsgSerializable, msg_addr, msg_block, msg_getdata, msg_getheaders, msg_headers,
                              msg_inv, msg_notfound, msg_ping, msg_pong, msg_tx, msg_verack, msg_version)
from bitcoin.net import CAddress, CInv

bitcoin.SelectParams("regtest")


class CoreHeaders(msg_headers):
    """`headers` as Bitcoin Core sends it: each header followed by a zero transaction count.
    python-bitcoinlib's own msg_headers leaves the count out (and so cannot talk to Core)."""

    def msg_ser(self, f):
        VarIntSerializer.stream_serialize(len(self.headers), f)
        for header in self.headers:
            header.stream_serialize(f)
            f.write(b"\x00")


def address(ip, port, time=None):
    a = CAddress()
    a.ip = ip
    a.port = port
    a.nServices = 1
    if time is not None:
        a.nTime = time
    return a


def messages(vectors):
    with open(os.path.join(vectors, "checkblock_valid.json")) as f:
        blocks = [e for e in json.load(f) if len(e) > 1]
    with open(os.path.join(vectors, "tx_valid.json")) as f:
        txs = [e for e in json.load(f) if len(e) > 1]
    genesis = CBlock.deserialize(x(blocks[0][4]))
    block = CBlock.deserialize(x(blocks[2][4]))
    tx = CTransaction.deserialize(x(txs[0][1]))
    out = {}

    v = msg_version()
    v.nVersion = 70016
    v.nServices = 1
    v.nTime = 1700000000
    v.addrTo = address("127.0.0.1", 18444)
    v.addrFrom = address("::1", 18445)
    v.nNonce = 0x1122334455667788
    v.strSubVer = b"/PeerStack:0.1.0/"
    v.nStartingHeight = 42
    v.fRelay = True
    out["version"] = v
    out["verack"] = msg_verack()
    p = msg_ping()
    p.nonce = 0x0102030405060708
    out["ping"] = p
    q = msg_pong()
    q.nonce = 0x0102030405060708
    out["pong"] = q
    a = msg_addr()
    a.addrs = [address("10.0.0.1", 8333, 1700000000), address("2001:db8::1", 18444, 1700000001)]
    out["addr"] = a
    items = []
    for kind, h in [(1, genesis.vtx[0].GetTxid()), (2, genesis.GetHash())]:
        i = CInv()
        i.type = kind
        i.hash = h
        items.append(i)
    for name, cls in [("inv", msg_inv), ("getdata", msg_getdata), ("notfound", msg_notfound)]:
        m = cls()
        m.inv = items
        out[name] = m
    t = msg_tx()
    t.tx = tx
    out["tx"] = t
    b = msg_block()
    b.block = block
    out["block"] = b
    g = msg_getheaders()
    g.locator.vHave = [genesis.GetHash(), genesis.vtx[0].GetTxid()]
    out["getheaders"] = g
    h = CoreHeaders()
    h.headers = [genesis.get_header(), block.get_header()]
    out["headers"] = h
    return {name: m.to_bytes().hex() for name, m in out.items()}


def parse(hexdata):
    m = MsgSerializable.from_bytes(bytes.fromhex(hexdata))
    return {"command": m.command.decode(), "repr": repr(m)[:200]}


if __name__ == "__main__":
    if sys.argv[1] == "parse":
        print(json.dumps(parse(sys.argv[2])))
    else:
        print(json.dumps(messages(sys.argv[1])))
