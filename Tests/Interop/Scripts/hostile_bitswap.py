#!/usr/bin/env python3
"""`peerstack ipfs daemon` under hostile Bitswap peers while Kubo v0.22 fetches from it. Run it
inside `unshare -n` with loopback up.

  hostile_bitswap.py WORKDIR PEERSTACK PYLIBP2P_PYTHON [MIB] [PEERS]

The daemon's repository holds a MIB (default 64) MiB file. PEERS (default 4) py-libp2p peers
(bitswap_flood.py) each ask for every block of it, five times over, and never read the answers;
while they hold on, Kubo connects to the daemon and downloads the file. Prints one JSON object:
whether Kubo's copy is whole, how long it took, and the daemon's peak RSS (VmHWM) before and
after the flood.
"""
import base64
import filecmp
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo  # noqa: E402


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    work, peerstack, venv_python = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    mib = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    peers = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    result = {}
    repo = os.path.join(work, "served-repo")
    payload = os.path.join(work, "payload.bin")
    rng = random.Random(11)
    with open(payload, "wb") as f:
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
    added = subprocess.run([peerstack, "ipfs", "add", "-Q", payload, "--repo", repo],
                           capture_output=True, text=True, check=True)
    cid = added.stdout.strip()
    # Every block's multihash (CIDv0) from the flatfs layout.
    cids = os.path.join(work, "cids.txt")
    with open(cids, "w") as f:
        for shard in sorted(os.listdir(os.path.join(repo, "blocks"))):
            directory = os.path.join(repo, "blocks", shard)
            for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
                if name.endswith(".data"):
                    key = name[:-5]
                    f.write(base64.b32decode(key + "=" * (-len(key) % 8)).hex() + "\n")
    daemon = subprocess.Popen(
        [peerstack, "ipfs", "daemon", "--repo", repo, "--listen", "/ip4/127.0.0.1/tcp/0",
         "--identity", os.path.join(work, "daemon.key")],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "daemon.log"), "w"), text=True)
    flood = None
    try:
        daemon.stdout.readline()
        address = daemon.stdout.readline().strip()[len("listening on "):]
        result["peakBefore"] = peak_rss(daemon.pid)
        flood = subprocess.Popen(
            [venv_python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bitswap_flood.py"),
             address, cids, str(peers), "5", "60"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "flood.log"), "w"), text=True)
        line = flood.stdout.readline().strip()
        result["flood"] = json.loads(line) if line.startswith("{") else {"error": line}
        # The flooders hold on, unread; the honest peer fetches meanwhile.
        lib = kubo.load_api()
        kubo_repo = os.path.join(work, "kubo-repo")
        kubo.start_node(lib, kubo_repo)
        result["connect"] = lib.ConnectToPeer(kubo_repo.encode(), address.encode())
        out = os.path.join(work, "kubo-got")
        started = time.time()
        result["download"] = lib.Download(kubo_repo.encode(), cid.encode(), out.encode())
        result["seconds"] = round(time.time() - started, 2)
        result["equal"] = os.path.exists(out) and filecmp.cmp(payload, out, shallow=False)
        result["flooding"] = flood.poll() is None
        result["peakAfter"] = peak_rss(daemon.pid)
        result["mib"] = mib
    finally:
        for proc in [flood, daemon]:
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in ["daemon.log", "flood.log"]:
            with open(os.path.join(work, name)) as f:
                result[name] = f.read()[-1500:]
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
