#!/usr/bin/python3
"""An emulated bad IP link between this network namespace and a new one, for fault tests and
benchmarks: tc netem in user space (this machine's kernel has no sch_netem).

  tun_link.py <loss> <delay_ms> <jitter_ms> <seconds> [<seed>]

Makes a network namespace with only loopback and one TUN device, and a TUN device here, with a
/30 between them: here is .2, the namespace is .1 (10.x.y.0/30, picked from the process ID so
that links made at once do not collide). Every IP packet between the two, TCP and UDP alike, goes
through this process, which drops each with probability <loss> and delivers the rest <delay_ms>
plus a random 0..<jitter_ms> later, each way (a jitter larger than the gap between packets
reorders them) -- what `tc qdisc add dev D root netem loss L delay D J` does on both ends of a
veth pair. Prints {"namespace": N, "remote": "10.x.y.1", "local": "10.x.y.2"} once the link is
up; run a program on the far side with `ip netns exec N …`. Exits after <seconds> or when stdin
closes, deleting the namespace (a program still inside loses its link), and prints
{"relayed": R, "dropped": D}. Needs root (CAP_NET_ADMIN). Nothing here can reach past the pair.
"""
import fcntl
import heapq
import json
import os
import random
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def ip(*args):
    subprocess.run(["ip", *args], check=True, stdout=subprocess.DEVNULL)


def main():
    loss, delay, jitter, seconds = (float(sys.argv[1]), float(sys.argv[2]) / 1000, float(sys.argv[3]) / 1000,
                                    float(sys.argv[4]))
    rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    pid = os.getpid()
    namespace, here_name, there_name = f"pslink{pid}", f"psl{pid}", f"psn{pid}"
    prefix = f"10.{64 + (pid >> 8) % 64}.{pid % 256}"
    remote, local = f"{prefix}.1", f"{prefix}.2"
    here, there = tun(here_name), tun(there_name)
    ip("netns", "add", namespace)
    try:
        ip("link", "set", there_name, "netns", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "addr", "add", f"{remote}/30", "dev", there_name)
        ip("-n", namespace, "link", "set", there_name, "up")
        ip("addr", "add", f"{local}/30", "dev", here_name)
        ip("link", "set", here_name, "up")
        print(json.dumps({"namespace": namespace, "remote": remote, "local": local}), flush=True)
        relay(here, there, loss, delay, jitter, seconds, rng)
    finally:
        os.close(here)
        os.close(there)
        subprocess.run(["ip", "netns", "del", namespace], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def relay(here, there, loss, delay, jitter, seconds, rng):
    other = {here: there, there: here}
    queue = []  # (time, order, fd to write, packet)
    order = relayed = dropped = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(queue)
            try:
                os.write(fd, packet)
                relayed += 1
            except OSError:
                dropped += 1
        timeout = max(0.0, min(0.05, (queue[0][0] - now) if queue else 0.05))
        readable, _, _ = select.select([here, there, sys.stdin], [], [], timeout)
        now = time.monotonic()
        for source in readable:
            if source is sys.stdin:
                if os.read(sys.stdin.fileno(), 4096) == b"":
                    deadline = 0
                continue
            for _ in range(256):
                try:
                    packet = os.read(source, 65536)
                except BlockingIOError:
                    break
                if rng.random() < loss:
                    dropped += 1
                    continue
                order += 1
                heapq.heappush(queue, (now + delay + rng.random() * jitter, order, other[source], packet))
    print(json.dumps({"relayed": relayed, "dropped": dropped}), flush=True)


if __name__ == "__main__":
    main()
