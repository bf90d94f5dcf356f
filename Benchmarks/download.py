#!/usr/bin/python3
"""Download benchmark (issues 3 and 17): a payload seeded by libtorrent on loopback, downloaded in
one run by PeerStack, libtorrent, aria2 and Transmission; then libtorrent downloading from a
PeerStack seeder vs from a libtorrent seeder. Wall time, CPU time and peak RSS of each
downloader process (from wait4), and PeerStack's ratios. Loopback only; every program is
started and stopped here, each bounded by a deadline.

  download.sh [SIZE_MIB] [--no-transmission] [--mode plain|mse|utp|seeding|all]

--mode (default plain): plain is TCP without encryption everywhere; mse is the same with MSE/PE
required on every side (RC4; libtorrent forced, aria2 --bt-require-crypto, Transmission
encryption 2); utp is libtorrent seeding and downloading over uTP only, PeerStack dialling over
uTP only (aria2 has no uTP); seeding is three libtorrent leechers at once from one PeerStack seeder
against the same from one libtorrent seeder (aggregate rate, and the seeder's CPU per GiB sent).
"""
import json, os, select, shutil, subprocess, sys, tempfile, time

from benchlib import random_payload, release_peerstack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "Tests/Interop/Scripts/lt_peer.py")
SIZE_MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
WITH_TRANSMISSION = "--no-transmission" not in sys.argv
MODE = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "plain"
DEADLINE = 300
# Per mode: lt_peer.py flags (both libtorrent seeder and leecher), PeerStack flags, aria2 flags,
# Transmission's "encryption" setting, and whether aria2 and Transmission take part.
MODES = {
    "plain": ([], ["--transport", "tcp", "--encryption", "disable"], [], 0, True),
    "mse": (["--encryption=forced"], ["--transport", "tcp", "--encryption", "require"],
            ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"], 2, True),
    "utp": (["--utp-only"], ["--transport", "utp", "--encryption", "disable"], [], 0, False),
}


def free_port():
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def measure(name, argv, done=None, cwd=None, stdin=subprocess.DEVNULL):
    """Runs argv to exit (or until done() is true, then stops it); returns wall, cpu, rss."""
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, stdin=stdin)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if done is not None and done():
            wall = time.monotonic() - start
            process.terminate()
            pid, status, usage = os.wait4(process.pid, 0)
            return {"name": name, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}
        if time.monotonic() - start > DEADLINE:
            process.kill(); os.wait4(process.pid, 0)
            raise SystemExit(f"{name} did not finish within {DEADLINE} s")
        time.sleep(0.02)
    wall = time.monotonic() - start
    if os.WEXITSTATUS(status) != 0 and done is None:
        raise SystemExit(f"{name} failed with status {os.WEXITSTATUS(status)}")
    return {"name": name, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def start_seeder(torrent, data, flags=()):
    port = free_port()
    process = subprocess.Popen(["/usr/bin/python3", PEER, "seed", torrent, data, str(port), str(DEADLINE * 6), "0",
                                *flags], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    json.loads(process.stdout.readline())
    return process, port


def cpu_seconds(pid):
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seeding(binary, torrent, seed_dir, target):
    """Three libtorrent leechers at once from one seeder, PeerStack's then libtorrent's: the
    aggregate rate (3 × size over the slowest leecher's wall time) and the seeder's CPU per GiB."""
    rows = []
    for name in ["peerstack", "libtorrent"]:
        if name == "peerstack":
            port = free_port()
            seeder = subprocess.Popen([binary, "torrent", "seed", torrent, seed_dir, "--port", str(port),
                                       "--listen", "127.0.0.1", "--no-dht", "--transport", "tcp",
                                       "--encryption", "disable"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
        else:
            seeder, port = start_seeder(torrent, seed_dir)
        before = cpu_seconds(seeder.pid)
        start = time.monotonic()
        leechers = [subprocess.Popen(["/usr/bin/python3", PEER, "get", torrent, target(f"seed-{name}-{i}"),
                                      str(free_port()), str(DEADLINE), f"127.0.0.1:{port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(3)]
        for leecher in leechers:
            leecher.wait(timeout=DEADLINE)
        wall = time.monotonic() - start
        cpu = cpu_seconds(seeder.pid) - before
        if name == "peerstack":
            seeder.send_signal(2); seeder.wait(timeout=30)
        else:
            seeder.stdin.close(); seeder.wait(timeout=30)
        sent_gib = 3 * SIZE_MIB / 1024
        rows.append({"name": name, "wall": wall, "rate": 3 * SIZE_MIB / wall, "cpu_per_gib": cpu / sent_gib})
    print(f"\nseeding {SIZE_MIB} MiB to three libtorrent leechers at once (TCP, plain):")
    print(f"{'seeder':<12} {'wall s':>8} {'MiB/s':>8} {'cpu s/GiB':>10}")
    for r in rows:
        print(f"{r['name']:<12} {r['wall']:8.2f} {r['rate']:8.1f} {r['cpu_per_gib']:10.2f}")
    ours, theirs = rows
    print(f"seeding: peerstack {ours['rate']:.1f} MiB/s, libtorrent {theirs['rate']:.1f} MiB/s, ratio "
          f"{ours['rate'] / theirs['rate']:.2f} (cpu {ours['cpu_per_gib']:.2f} vs {theirs['cpu_per_gib']:.2f} s/GiB)")


def main():
    work = tempfile.mkdtemp(prefix="peerstack-bench-")
    try:
        binary = release_peerstack(ROOT)
        seed_dir = os.path.join(work, "seed"); os.makedirs(seed_dir)
        payload = os.path.join(seed_dir, "payload.bin")
        print(f"making a {SIZE_MIB} MiB payload in {work}", flush=True)
        random_payload(payload, SIZE_MIB)
        tracker_dir = os.path.join(work, "opentracker"); os.makedirs(tracker_dir)
        os.chmod(work, 0o755); os.chmod(tracker_dir, 0o755)
        tracker_port = free_port()
        torrent = os.path.join(work, "payload.torrent")
        subprocess.run([binary, "torrent", "create", payload, "-t", f"http://127.0.0.1:{tracker_port}/announce",
                        "-o", torrent, "--no-date"], check=True, capture_output=True)
        info = json.loads(subprocess.run([binary, "torrent", "info", "--json", torrent], check=True,
                                         capture_output=True, text=True).stdout)
        with open(os.path.join(tracker_dir, "list"), "w") as f:
            f.write(info["infoHash"] + "\n")
        os.chmod(os.path.join(tracker_dir, "list"), 0o644)
        tracker = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(tracker_port), "-P", str(tracker_port),
                                    "-d", tracker_dir, "-w", "list", "-u", "nobody"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

        def target(name):
            path = os.path.join(work, name); os.makedirs(path); return path

        modes = ["plain", "mse", "utp", "seeding"] if MODE == "all" else [MODE]
        for mode in modes:
            if mode == "seeding":
                seeding(binary, torrent, seed_dir, target)
            else:
                run_mode(mode, binary, torrent, seed_dir, target)
        tracker.terminate()
        for name in os.listdir(work):
            candidate = os.path.join(work, name, "payload.bin")
            if name != "seed" and os.path.exists(candidate):
                same = subprocess.run(["cmp", "-s", candidate, payload]).returncode == 0
                if not same:
                    raise SystemExit(f"{name}: downloaded data differs from the payload")
        print("\nall downloaded copies checked identical to the payload")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_mode(mode, binary, torrent, seed_dir, target):
    lt_flags, ps_flags, aria_flags, transmission_encryption, others = MODES[mode]
    seeder, seed_port = start_seeder(torrent, seed_dir, lt_flags)
    results = []

    results.append(measure("peerstack", [binary, "torrent", "get", torrent, "-o", target(f"{mode}-peerstack"),
                                         "--peer", f"127.0.0.1:{seed_port}", "--port", "0",
                                         "--listen", "127.0.0.1", "--no-dht", *ps_flags]))
    results.append(measure("libtorrent", ["/usr/bin/python3", PEER, "get", torrent, target(f"{mode}-libtorrent"),
                                          str(free_port()), str(DEADLINE), f"127.0.0.1:{seed_port}", *lt_flags]))
    if others and shutil.which("aria2c"):
        results.append(measure("aria2", ["aria2c", "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
                                         "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                                         f"--listen-port={free_port()}", "--summary-interval=0",
                                         "--file-allocation=none", *aria_flags, "-d", target(f"{mode}-aria2"),
                                         torrent]))
    if others and WITH_TRANSMISSION and shutil.which("transmission-cli"):
        config = target(f"{mode}-transmission-config"); port = free_port()
        finished = os.path.join(config, "done")
        with open(os.path.join(config, "settings.json"), "w") as f:
            json.dump({"dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
                       "port-forwarding-enabled": False, "bind-address-ipv4": "127.0.0.1", "peer-port": port,
                       "rpc-enabled": False, "encryption": transmission_encryption}, f)
        script = os.path.join(config, "finish.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\ntouch '{finished}'\n")
        os.chmod(script, 0o755)

        def dial():
            # Transmission never dials 127.x: the seeder dials it, once it listens.
            time.sleep(1)
            seeder.stdin.write(f"connect 127.0.0.1:{port}\n"); seeder.stdin.flush()
        import threading
        threading.Thread(target=dial, daemon=True).start()
        results.append(measure("transmission", ["transmission-cli", "-g", config, "-w",
                                                target(f"{mode}-transmission"),
                                                "-p", str(port), "-f", script, torrent],
                               done=lambda: os.path.exists(finished)))
    seeder.stdin.close(); seeder.wait(timeout=30)

    # Reverse: libtorrent downloading from a PeerStack seeder, then from a libtorrent seeder.
    ps_port = free_port()
    ps_seeder = subprocess.Popen([binary, "torrent", "seed", torrent, seed_dir, "--port", str(ps_port),
                                  "--listen", "127.0.0.1", "--no-dht", *ps_flags],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    reverse = [measure("libtorrent <- peerstack seeder", ["/usr/bin/python3", PEER, "get", torrent,
                                                           target(f"{mode}-rev-ps"), str(free_port()),
                                                           str(DEADLINE), f"127.0.0.1:{ps_port}", *lt_flags])]
    ps_seeder.send_signal(2); ps_seeder.wait(timeout=30)
    seeder, seed_port = start_seeder(torrent, seed_dir, lt_flags)
    reverse.append(measure("libtorrent <- libtorrent seeder", ["/usr/bin/python3", PEER, "get", torrent,
                                                                target(f"{mode}-rev-lt"), str(free_port()),
                                                                str(DEADLINE), f"127.0.0.1:{seed_port}",
                                                                *lt_flags]))
    seeder.stdin.close(); seeder.wait(timeout=30)

    print(f"\n[{mode}] {SIZE_MIB} MiB from a libtorrent seeder on loopback:")
    print(f"{'downloader':<32} {'wall s':>8} {'cpu s':>8} {'rss MiB':>9}")
    for r in results + reverse:
        print(f"{r['name']:<32} {r['wall']:8.2f} {r['cpu']:8.2f} {r['rss']:9.0f}")
    ours = results[0]
    for r in results[1:]:
        print(f"download[{mode}]: peerstack {ours['wall']:.2f}s, {r['name']} {r['wall']:.2f}s, ratio "
              f"{r['wall'] / ours['wall']:.2f} (cpu {ours['cpu']:.2f}s vs {r['cpu']:.2f}s, "
              f"rss {ours['rss']:.0f} vs {r['rss']:.0f} MiB)")
    print(f"seed[{mode}]: libtorrent from peerstack {reverse[0]['wall']:.2f}s, from libtorrent "
          f"{reverse[1]['wall']:.2f}s, ratio {reverse[1]['wall'] / reverse[0]['wall']:.2f}", flush=True)


main()
