#!/usr/bin/env python3
"""One Noise+yamux stream on loopback: PeerStack to PeerStack, and go-libp2p (p2pd) to go-libp2p,
in one run; and one core's Noise cipher rate (swift-crypto's ChaCha20-Poly1305 through
PeerStack's NoiseTransport), the limit of one encrypted stream. Run inside `unshare -n` (see
libp2p.sh).

  libp2p.py PEERSTACK P2PD [SIZE_MIB] [ROUNDS]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Interop",
                                "Scripts"))
from p2pd_peer import b58decode, control, message, parse, read_delimited, tcp_multiaddr, unix_multiaddr  # noqa: E402

SINK = "/x/sink"


def peerstack_round(peerstack, work, size):
    listener = subprocess.Popen(
        [peerstack, "p2p", "listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--discard", SINK,
         "--security", "noise", "--identity", os.path.join(work, "listener.key")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = listener.stdout.readline().strip()[len("listening on "):]
        run = subprocess.run(
            [peerstack, "p2p", "send", address, "--protocol", SINK, "--bytes", str(size), "--security",
             "noise", "--identity", os.path.join(work, "dialer.key"), "--json"],
            capture_output=True, text=True, timeout=600, check=True)
        result = json.loads(run.stdout)
        if int(result["answer"].strip()) != size:
            sys.exit("PeerStack's sink counted " + result["answer"])
        return result["seconds"]
    finally:
        listener.kill()
        listener.wait()


def start_daemon(p2pd, work, name):
    ctl = os.path.join(work, name + ".sock")
    if os.path.exists(ctl):
        os.unlink(ctl)  # left by the last round's daemon
    daemon = subprocess.Popen(
        [p2pd, "-listen", "/unix" + ctl, "-hostAddrs", "/ip4/127.0.0.1/tcp/0", "-noise"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peer = port = None
    while port is None:
        line = daemon.stdout.readline().strip()
        if not line and daemon.poll() is not None:
            sys.exit("p2pd exited")
        if line.startswith("Peer ID: "):
            peer = line[len("Peer ID: "):]
        elif line.startswith("/ip4/127.0.0.1/tcp/"):
            port = int(line.split("/")[4])
    while not os.path.exists(ctl):
        time.sleep(0.02)
    return daemon, ctl, peer, port


def p2pd_round(p2pd, work, size):
    sender, sender_ctl, _, _ = start_daemon(p2pd, work, "a")
    receiver, receiver_ctl, peer, port = start_daemon(p2pd, work, "b")
    try:
        handler = os.path.join(work, "sink.sock")
        if os.path.exists(handler):
            os.unlink(handler)
        server = socket.socket(socket.AF_UNIX)
        server.bind(handler)
        server.listen(1)
        done = {}

        def sink():
            conn, _ = server.accept()
            read_delimited(conn)
            buffer = bytearray(1 << 20)
            total = 0
            while total < size:
                count = conn.recv_into(buffer)
                if not count:
                    break
                total += count
            done["at"], done["bytes"] = time.perf_counter(), total
            conn.close()
        thread = threading.Thread(target=sink)
        thread.start()
        _, sock = control(receiver_ctl, message(
            (1, 3), (4, message((1, unix_multiaddr(handler)), (2, SINK), (3, False)))))
        sock.close()
        remote = b58decode(peer)
        _, sock = control(sender_ctl, message(
            (1, 1), (2, message((1, remote), (2, tcp_multiaddr("127.0.0.1", port)), (3, 30)))))
        sock.close()
        start = time.perf_counter()
        _, stream = control(sender_ctl, message((1, 2), (3, message((1, remote), (2, SINK), (3, 30)))))
        chunk = memoryview(os.urandom(1 << 20))
        sent = 0
        while sent < size:
            piece = chunk[:min(len(chunk), size - sent)]
            stream.sendall(piece)
            sent += len(piece)
        thread.join(600)
        stream.close()
        server.close()
        if done.get("bytes") != size:
            sys.exit(f"p2pd's sink got {done.get('bytes')} bytes")
        return done["at"] - start
    finally:
        for daemon in (sender, receiver):
            daemon.kill()
            daemon.wait()


def main():
    peerstack, p2pd = sys.argv[1], sys.argv[2]
    size = (int(sys.argv[3]) if len(sys.argv) > 3 else 1024) << 20
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    mib = size / (1 << 20)
    with tempfile.TemporaryDirectory() as work:
        rates = json.loads(subprocess.run(
            [peerstack, "p2p", "cipher-rate", "--bytes", str(size), "--json"],
            capture_output=True, text=True, check=True).stdout)
        seal, open_ = rates["sealBytesPerSecond"] / (1 << 20), rates["openBytesPerSecond"] / (1 << 20)
        # One stream between two nodes (a core each) runs at most at the slower of the two.
        cipher = min(seal, open_)
        ours, theirs = [], []
        for index in range(rounds):
            ours.append(peerstack_round(peerstack, work, size))
            theirs.append(p2pd_round(p2pd, work, size))
            print(f"round {index + 1}: peerstack {mib / ours[-1]:.0f} MiB/s, p2pd {mib / theirs[-1]:.0f} MiB/s",
                  flush=True)
    best_ours, best_theirs = mib / min(ours), mib / min(theirs)
    print(f"noise cipher (ChaCha20-Poly1305, one core): seal {seal:.0f} MiB/s, open {open_:.0f} MiB/s")
    print(f"libp2p stream: peerstack {best_ours:.0f} MiB/s, p2pd {best_theirs:.0f} MiB/s, "
          f"ratio {best_ours / best_theirs:.2f}")
    print(f"libp2p stream vs cipher: peerstack {best_ours:.0f} MiB/s, cipher {cipher:.0f} MiB/s, "
          f"ratio {best_ours / cipher:.2f}")


if __name__ == "__main__":
    main()
