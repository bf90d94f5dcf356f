#!/usr/bin/python3
"""Tracker benchmark (issue 4): the PeerStack tracker and opentracker under the same BEP 15 load,
in one run, on loopback only.

The load generator is this project's own (`tracker-load`, Benchmarks/TrackerLoad): simulated
peers on 127.0.0.1-127.0.0.20 announce (1000 torrents, 50k peers, num_want 50) to one tracker at
a time, every run bounded in time. For each tracker, three phases:
  1. populate: every peer announces once (`started`), as fast as answers come;
  2. fixed: a fixed offered rate (default 20k/s) for DURATION seconds;
  3. saturation: closed loop (256 in flight) for DURATION seconds;
then, separately, memory: 1,000,000 distinct peers announce once and the RSS growth is divided
by a million. CPU is the tracker process's user+system time during each phase (/proc/PID/stat).
Both trackers run with the same whitelist of the 1000 info-hashes.

Usage: Benchmarks/tracker.sh [DURATION_SECONDS] [FIXED_RATE]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
FIXED_RATE = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
TORRENTS, PEERS, NUMWANT = 1000, 50000, 50
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def load(binary, port, *args, timeout=400):
    out = subprocess.run([binary, "--target", f"127.0.0.1:{port}", "--torrents", str(TORRENTS),
                          "--numwant", str(NUMWANT), *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"tracker-load failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_udp(port):
    # Ready when a BEP 15 connect is answered.
    deadline = time.time() + 15
    packet = (0x41727101980).to_bytes(8, "big") + (0).to_bytes(4, "big") + (7).to_bytes(4, "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.time() < deadline:
            try:
                s.sendto(packet, ("127.0.0.1", port))
                if len(s.recv(64)) >= 16:
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"no tracker on UDP port {port}")


def start(kind, work, whitelist):
    port = free_port()
    if kind == "peerstack":
        binary = os.path.join(ROOT, ".build/release/peerstack")
        process = subprocess.Popen([binary, "tracker", "serve", "--http", "off", "--udp", f"127.0.0.1:{port}",
                                    "--whitelist", whitelist, "--log-interval", "3600"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        directory = os.path.join(work, "opentracker")
        os.makedirs(directory, exist_ok=True)
        os.chmod(work, 0o755)
        os.chmod(directory, 0o755)
        shutil.copy(whitelist, os.path.join(directory, "list"))
        os.chmod(os.path.join(directory, "list"), 0o644)
        process = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(free_port()), "-P", str(port),
                                    "-d", directory, "-w", "list", "-u", "nobody"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_udp(port)
    return process, port


def phase(process, generator, port, *args):
    before = cpu_seconds(process.pid)
    result = load(generator, port, *args)
    result["cpu"] = cpu_seconds(process.pid) - before
    result["cpu_share"] = result["cpu"] / result["seconds"]
    result["rss_kib"] = rss_kib(process.pid)
    return result


def main():
    generator = os.path.join(ROOT, ".build/release/tracker-load")
    for path in (generator, os.path.join(ROOT, ".build/release/peerstack")):
        if not os.path.exists(path):
            sys.exit(f"{path} missing: run swift build -c release first")
    if shutil.which("opentracker") is None:
        sys.exit("opentracker is not installed (apt-get install opentracker)")
    work = tempfile.mkdtemp(prefix="tracker-bench-")
    results = {}
    try:
        whitelist = os.path.join(work, "whitelist")
        with open(whitelist, "w") as f:
            f.write(subprocess.run([generator, "--print-whitelist", "--torrents", str(TORRENTS)],
                                   capture_output=True, text=True, check=True).stdout)
        for kind in ("opentracker", "peerstack"):
            process, port = start(kind, work, whitelist)
            try:
                idle = rss_kib(process.pid)
                populate = phase(process, generator, port, "--peers", str(PEERS), "--count", str(PEERS),
                                 "--duration", "60")
                fixed = phase(process, generator, port, "--peers", str(PEERS), "--rate", str(FIXED_RATE),
                              "--duration", str(DURATION))
                saturation = phase(process, generator, port, "--peers", str(PEERS), "--duration", str(DURATION))
                results[kind] = {"idle_rss_kib": idle, "populate": populate, "fixed": fixed,
                                 "saturation": saturation, "hwm_kib": rss_kib(process.pid, "VmHWM")}
            finally:
                process.terminate()
                process.wait(timeout=10)
            # Memory per million peers, on a fresh tracker.
            process, port = start(kind, work, whitelist)
            try:
                before = rss_kib(process.pid)
                million = phase(process, generator, port, "--peers", "1000000", "--count", "1000000",
                                "--duration", "120")
                results[kind]["million"] = million
                results[kind]["bytes_per_peer"] = (rss_kib(process.pid) - before) * 1024 / 1_000_000
            finally:
                process.terminate()
                process.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nUDP announces (BEP 15), {TORRENTS} torrents, {PEERS} peers, num_want {NUMWANT}, loopback:")
    header = f"{'tracker':12} {'phase':12} {'answered/s':>11} {'p50 µs':>8} {'p99 µs':>8} {'CPU':>6} {'per CPU-s':>10} {'RSS':>9}"
    print(header)
    for kind in ("opentracker", "peerstack"):
        for name in ("fixed", "saturation"):
            r = results[kind][name]
            per_cpu = r["answered"] / r["cpu"] if r["cpu"] > 0 else float("inf")
            print(f"{kind:12} {name:12} {r['answered_per_second']:>11.0f} {r['p50_us']:>8} {r['p99_us']:>8} "
                  f"{r['cpu_share'] * 100:>5.0f}% {per_cpu:>10.0f} {r['rss_kib'] / 1024:>7.1f}MB")
        print(f"{kind:12} {'1M peers':12} {results[kind]['million']['answered_per_second']:>11.0f} "
              f"{'':>8} {'':>8} {'':>6} {'':>10} {results[kind]['bytes_per_peer']:>6.0f} B/peer")
    o, p = results["opentracker"], results["peerstack"]
    sat_ratio = p["saturation"]["answered_per_second"] / o["saturation"]["answered_per_second"]
    o_eff = o["saturation"]["answered"] / max(o["saturation"]["cpu"], 1e-9)
    p_eff = p["saturation"]["answered"] / max(p["saturation"]["cpu"], 1e-9)
    print()
    print(f"saturation announces/s: peerstack {p['saturation']['answered_per_second']:.0f}, "
          f"opentracker {o['saturation']['answered_per_second']:.0f}, ratio {sat_ratio:.2f}")
    print(f"announces per CPU-second at saturation: peerstack {p_eff:.0f}, opentracker {o_eff:.0f}, "
          f"ratio {p_eff / o_eff:.2f}")
    print(f"p99 at saturation: peerstack {p['saturation']['p99_us']} µs, opentracker {o['saturation']['p99_us']} µs, "
          f"ratio {p['saturation']['p99_us'] / max(o['saturation']['p99_us'], 1):.2f}")
    print(f"p99 at {FIXED_RATE}/s: peerstack {p['fixed']['p99_us']} µs, opentracker {o['fixed']['p99_us']} µs; "
          f"CPU peerstack {p['fixed']['cpu_share'] * 100:.0f}%, opentracker {o['fixed']['cpu_share'] * 100:.0f}%")
    print(f"memory per million peers: peerstack {p['bytes_per_peer']:.0f} B/peer, "
          f"opentracker {o['bytes_per_peer']:.0f} B/peer, ratio {p['bytes_per_peer'] / max(o['bytes_per_peer'], 1):.2f}")
    print("\nraw:", json.dumps(results))


if __name__ == "__main__":
    main()
