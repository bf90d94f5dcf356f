#!/usr/bin/python3
"""Downloads over a bad link (issue 17, item 4): a payload seeded by libtorrent in a network
namespace behind tun_link.py (tc netem in user space: 5 % loss each way, 50 ms delay each way,
so 100 ms round trip; the second pass adds up to 30 ms jitter, which reorders), downloaded by
PeerStack and then by libtorrent over the same kind of link, over uTP only and over TCP only.
Prints each download's wall time, PeerStack's ratio, and checks every copy against the payload.
Needs root (ip netns, /dev/net/tun); nothing leaves the namespace pair.

  faults.sh [SIZE_MIB] [--transport utp|tcp|both] [--jitter 0|30|both]
"""
import json, os, shutil, subprocess, sys, tempfile, time

from benchlib import random_payload, release_peerstack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "Tests/Interop/Scripts/lt_peer.py")
LINK = os.path.join(ROOT, "Tests/Interop/Scripts/tun_link.py")
ARGS = [a for a in sys.argv[1:]]


def option(name, default):
    return ARGS[ARGS.index(name) + 1] if name in ARGS else default


SIZE_MIB = int(ARGS[0]) if ARGS and ARGS[0].isdigit() else 64
TRANSPORTS = ["utp", "tcp"] if option("--transport", "both") == "both" else [option("--transport", "both")]
JITTERS = [0, 30] if option("--jitter", "both") == "both" else [int(option("--jitter", "both"))]
DEADLINE = 3600


def start_link(jitter):
    link = subprocess.Popen(["/usr/bin/python3", LINK, "0.05", "50", str(jitter), str(DEADLINE + 120)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return link, json.loads(link.stdout.readline())


def download(name, transport, jitter, binary, torrent, seed_dir, target):
    """One download over a fresh link; returns its wall time in seconds."""
    link, where = start_link(jitter)
    port = 6881
    flags = ["--utp-only"] if transport == "utp" else []
    seeder = subprocess.Popen(["ip", "netns", "exec", where["namespace"], "/usr/bin/python3", PEER, "seed", torrent,
                               seed_dir, str(port), str(DEADLINE + 60), "0", f"--host={where['remote']}", *flags],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        json.loads(seeder.stdout.readline())
        peer = f"{where['remote']}:{port}"
        if name == "peerstack":
            argv = [binary, "torrent", "get", torrent, "-o", target, "--peer", peer, "--port", "0",
                    "--listen", where["local"], "--no-dht", "--transport", transport, "--encryption", "disable"]
        else:
            argv = ["/usr/bin/python3", PEER, "get", torrent, target, "0", str(DEADLINE), peer,
                    f"--host={where['local']}", *flags]
        start = time.monotonic()
        process = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=DEADLINE)
        wall = time.monotonic() - start
        if process.returncode != 0:
            raise SystemExit(f"{name} over {transport} failed with status {process.returncode}")
        return wall
    finally:
        seeder.stdin.close()
        seeder.wait(timeout=30)
        link.stdin.close()
        link.wait(timeout=30)


def main():
    work = tempfile.mkdtemp(prefix="peerstack-faults-")
    try:
        binary = release_peerstack(ROOT)
        seed_dir = os.path.join(work, "seed"); os.makedirs(seed_dir)
        payload = os.path.join(seed_dir, "payload.bin")
        random_payload(payload, SIZE_MIB)
        torrent = os.path.join(work, "payload.torrent")
        subprocess.run([binary, "torrent", "create", payload, "-o", torrent, "--no-date"], check=True,
                       capture_output=True)
        print(f"{SIZE_MIB} MiB from a libtorrent seeder through 5 % loss each way, 100 ms round trip")
        print(f"{'transport':<10} {'jitter':>7} {'peerstack s':>12} {'libtorrent s':>13} {'ratio':>6}", flush=True)
        for transport in TRANSPORTS:
            for jitter in JITTERS:
                walls = {}
                for name in ["peerstack", "libtorrent"]:
                    target = os.path.join(work, f"{transport}-{jitter}-{name}"); os.makedirs(target)
                    walls[name] = download(name, transport, jitter, binary, torrent, seed_dir, target)
                    if subprocess.run(["cmp", "-s", os.path.join(target, "payload.bin"), payload]).returncode:
                        raise SystemExit(f"{name} over {transport}: downloaded data differs from the payload")
                    shutil.rmtree(target)
                print(f"{transport:<10} {jitter:>5}ms {walls['peerstack']:12.1f} {walls['libtorrent']:13.1f} "
                      f"{walls['peerstack'] / walls['libtorrent']:6.2f}", flush=True)
        print("every downloaded copy checked identical to the payload")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
