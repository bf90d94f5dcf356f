#!/usr/bin/python3
"""A hostile uTP peer for PeerStack's tests, on loopback only: opens uTP connections to
127.0.0.1:<port> and never sends a byte after the SYN (so no BitTorrent handshake ever comes),
answering nothing. <count> SYNs from new connection IDs, 200 a second, from 4 sockets; it stops
after <seconds> or when stdin closes, printing {"syns": N, "answered": M}.

  utp_flood.py <port> <count> <seconds>
"""
import json, os, select, socket, struct, sys, time

port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    socks.append(s)
print(json.dumps({"started": True}), flush=True)
sent = answered = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    if sent < count:
        s = socks[sent % 4]
        syn = struct.pack(">BBHIIIHH", 0x41, 0, (sent * 2) & 0xFFFF, 0, 0, 0, 1, 0)
        s.sendto(syn, ("127.0.0.1", port))
        sent += 1
    readable, _, _ = select.select(socks + [sys.stdin], [], [], 0.005)
    for r in readable:
        if r is sys.stdin:
            if os.read(sys.stdin.fileno(), 4096) == b"":
                deadline = 0
            continue
        try:
            while True:
                r.recvfrom(2048)
                answered += 1
        except BlockingIOError:
            pass
print(json.dumps({"syns": sent, "answered": answered}), flush=True)
os._exit(0)
