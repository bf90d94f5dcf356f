#!/usr/bin/env python3
"""The body of ipfs-fetch.sh (inside `unshare -n`): PEERSTACK SIZE_MIB ROUNDS."""
import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Interop", "Scripts"))
import kubo  # noqa: E402


def main():
    peerstack, mib, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    work = tempfile.mkdtemp(prefix="ipfs-fetch-")
    lib = kubo.load_api()

    def text(pointer):
        return kubo.text(lib, pointer)

    def node(name):
        repo = os.path.join(work, name)
        return repo, kubo.start_node(lib, repo)

    try:
        source, address = node("kubo-a")
        payload = os.path.join(work, "payload.bin")
        rng = random.Random(256)
        with open(payload, "wb") as f:
            for _ in range(mib):
                f.write(rng.randbytes(1 << 20))
        cid = text(lib.AddFile(source.encode(), payload.encode(), False))
        print(f"{mib} MiB added by Kubo A as {cid}; {rounds} rounds, best of each")
        best_ps, best_kubo, peak = None, None, 0
        for index in range(rounds):
            repo = os.path.join(work, f"ps-{index}")
            out = os.path.join(work, f"ps-{index}.out")
            started = time.time()
            # GNU time measures the peak RSS of a child it forks itself: a child forked from this
            # process would count this process's pages (Kubo's, ~1 GiB after a few rounds) until
            # its exec.
            rss_file = os.path.join(work, "rss")
            run = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", rss_file, peerstack, "ipfs", "get", cid, "-o", out,
                 "--peer", address, "--repo", repo, "--identity", os.path.join(work, "ps.key")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            seconds = time.time() - started
            if run.returncode != 0 or not filecmp.cmp(payload, out, shallow=False):
                sys.exit("peerstack ipfs get failed: " + run.stderr[-2000:])
            with open(rss_file) as f:
                rss = int(f.read().split()[-1]) // 1024
            peak = max(peak, rss)
            print(f"  PeerStack round {index + 1}: {seconds:.2f} s, peak RSS {rss} MiB")
            best_ps = seconds if best_ps is None else min(best_ps, seconds)
            shutil.rmtree(repo, ignore_errors=True)
            os.remove(out)

            fetcher, _ = node(f"kubo-b{index}")
            if lib.ConnectToPeer(fetcher.encode(), address.encode()) != 0:
                sys.exit("Kubo B could not connect to Kubo A")
            out = os.path.join(work, f"kubo-{index}.out")
            started = time.time()
            if lib.Download(fetcher.encode(), cid.encode(), out.encode()) != 0:
                sys.exit("Kubo B's Download failed")
            seconds = time.time() - started
            if not filecmp.cmp(payload, out, shallow=False):
                sys.exit("Kubo B's copy differs")
            best_kubo = seconds if best_kubo is None else min(best_kubo, seconds)
            os.remove(out)
            print(f"round {index + 1}: PeerStack {mib / best_ps:.0f} MiB/s best so far, Kubo B {mib / best_kubo:.0f} MiB/s")
        print(f"PeerStack: {best_ps:.2f} s, {mib / best_ps:.0f} MiB/s, peak RSS {peak} MiB")
        print(f"Kubo B:    {best_kubo:.2f} s, {mib / best_kubo:.0f} MiB/s (Kubo B's RSS is this Python process's, not measured)")
        print(f"ratio (PeerStack rate / Kubo rate): {best_kubo / best_ps:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
