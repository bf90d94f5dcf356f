#!/usr/bin/python3
"""A lossy, slow UDP link between two programs on loopback, for uTP fault tests (this machine's
kernel has no tc netem: CONFIG_NET_SCH_NETEM is not set).

  lossy_link.py <target_port> <loss> <delay_ms> <jitter_ms> <seconds> [<seed>]

Listens on a free 127.0.0.1 port (printed as {"port": P}) and relays datagrams both ways between
whoever sends to it and 127.0.0.1:<target_port>, through one upstream socket per client. Each
datagram, either way, is dropped with probability <loss>, else delivered <delay_ms> plus a random
0..<jitter_ms> later (a jitter larger than the gap between datagrams reorders them). Exits after
<seconds> or when stdin closes; prints {"relayed": N, "dropped": M} at the end.
"""
import heapq
import json
import os
import random
import select
import socket
import sys
import time


def main():
    target_port, loss, delay, jitter, seconds = (int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]) / 1000,
                                                 float(sys.argv[4]) / 1000, float(sys.argv[5]))
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    target = ("127.0.0.1", target_port)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    front.setblocking(False)
    print(json.dumps({"port": front.getsockname()[1]}), flush=True)
    upstream = {}   # client address -> socket towards the target
    clients = {}    # upstream socket fileno -> client address
    queue = []      # (time, order, socket, payload, address)
    order = 0
    relayed = dropped = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, sock, payload, address = heapq.heappop(queue)
            try:
                sock.sendto(payload, address)
                relayed += 1
            except OSError:
                dropped += 1
        timeout = max(0.0, min(0.05, (queue[0][0] - now) if queue else 0.05))
        readable, _, _ = select.select([front, sys.stdin] + list(upstream.values()), [], [], timeout)
        for sock in readable:
            if sock is sys.stdin:
                if os.read(sys.stdin.fileno(), 4096) == b"":
                    deadline = 0
                continue
            for _ in range(64):
                try:
                    payload, address = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                if sock is front:
                    if address not in upstream:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        up.setblocking(False)
                        upstream[address] = up
                        clients[up.fileno()] = address
                    out, to = upstream[address], target
                else:
                    out, to = front, clients[sock.fileno()]
                if rng.random() < loss:
                    dropped += 1
                    continue
                order += 1
                heapq.heappush(queue, (time.monotonic() + delay + rng.random() * jitter, order, out, payload, to))
    print(json.dumps({"relayed": relayed, "dropped": dropped}), flush=True)
    os._exit(0)


main()
