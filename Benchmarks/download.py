#!/usr/bin/python3
"""Download benchmark (issue 3): a payload seeded by libtorrent on loopback, downloaded in one
run by PeerStack, libtorrent, aria2 and Transmission; then libtorrent downloading from a
PeerStack seeder vs from a libtorrent seeder. Wall time, CPU time and peak RSS of each
downloader process (from wait4), and PeerStack's ratios. Loopback only; every program is
started and stopped here, each bounded by a deadline.
"""
import json, os, select, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "Tests/Interop/Scripts/lt_peer.py")
SIZE_MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
WITH_TRANSMISSION = "--no-transmission" not in sys.argv
DEADLINE = 300


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


def start_seeder(torrent, data):
    port = free_port()
    process = subprocess.Popen(["/usr/bin/python3", PEER, "seed", torrent, data, str(port), str(DEADLINE * 6)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    json.loads(process.stdout.readline())
    return process, port


def main():
    work = tempfile.mkdtemp(prefix="peerstack-bench-")
    try:
        subprocess.run(["swift", "build", "-c", "release", "--product", "peerstack"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        binary = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip() + "/peerstack"
        seed_dir = os.path.join(work, "seed"); os.makedirs(seed_dir)
        payload = os.path.join(seed_dir, "payload.bin")
        print(f"making a {SIZE_MIB} MiB payload in {work}", flush=True)
        with open(payload, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))
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
        seeder, seed_port = start_seeder(torrent, seed_dir)
        results = []

        def target(name):
            path = os.path.join(work, name); os.makedirs(path); return path

        results.append(measure("peerstack", [binary, "torrent", "get", torrent, "-o", target("peerstack"),
                                             "--peer", f"127.0.0.1:{seed_port}", "--port", "0",
                                             "--listen", "127.0.0.1"]))
        results.append(measure("libtorrent", ["/usr/bin/python3", PEER, "get", torrent, target("libtorrent"),
                                              str(free_port()), str(DEADLINE), f"127.0.0.1:{seed_port}"]))
        if shutil.which("aria2c"):
            results.append(measure("aria2", ["aria2c", "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
                                             "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                                             f"--listen-port={free_port()}", "--summary-interval=0",
                                             "--file-allocation=none", "-d", target("aria2"), torrent]))
        if WITH_TRANSMISSION and shutil.which("transmission-cli"):
            config = target("transmission-config"); port = free_port(); finished = os.path.join(config, "done")
            with open(os.path.join(config, "settings.json"), "w") as f:
                json.dump({"dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
                           "port-forwarding-enabled": False, "bind-address-ipv4": "127.0.0.1", "peer-port": port,
                           "rpc-enabled": False}, f)
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
            results.append(measure("transmission", ["transmission-cli", "-g", config, "-w", target("transmission"),
                                                    "-p", str(port), "-f", script, torrent],
                                   done=lambda: os.path.exists(finished)))
        seeder.stdin.close(); seeder.wait(timeout=30)

        # Reverse: libtorrent downloading from a PeerStack seeder, then from a libtorrent seeder.
        ps_port = free_port()
        ps_seeder = subprocess.Popen([binary, "torrent", "seed", torrent, seed_dir, "--port", str(ps_port),
                                      "--listen", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        reverse = [measure("libtorrent <- peerstack seeder", ["/usr/bin/python3", PEER, "get", torrent,
                                                               target("rev-ps"), str(free_port()), str(DEADLINE),
                                                               f"127.0.0.1:{ps_port}"])]
        ps_seeder.send_signal(2); ps_seeder.wait(timeout=30)
        seeder, seed_port = start_seeder(torrent, seed_dir)
        reverse.append(measure("libtorrent <- libtorrent seeder", ["/usr/bin/python3", PEER, "get", torrent,
                                                                    target("rev-lt"), str(free_port()),
                                                                    str(DEADLINE), f"127.0.0.1:{seed_port}"]))
        seeder.stdin.close(); seeder.wait(timeout=30)
        tracker.terminate()

        for name in os.listdir(work):
            candidate = os.path.join(work, name, "payload.bin")
            if name != "seed" and os.path.exists(candidate):
                same = subprocess.run(["cmp", "-s", candidate, payload]).returncode == 0
                if not same:
                    raise SystemExit(f"{name}: downloaded data differs from the payload")

        print(f"\n{SIZE_MIB} MiB from a libtorrent seeder on loopback (all data checked identical):")
        print(f"{'downloader':<32} {'wall s':>8} {'cpu s':>8} {'rss MiB':>9}")
        for r in results + reverse:
            print(f"{r['name']:<32} {r['wall']:8.2f} {r['cpu']:8.2f} {r['rss']:9.0f}")
        ours = results[0]
        print()
        for r in results[1:]:
            print(f"download: peerstack {ours['wall']:.2f}s, {r['name']} {r['wall']:.2f}s, ratio "
                  f"{r['wall'] / ours['wall']:.2f} (cpu {ours['cpu']:.2f}s vs {r['cpu']:.2f}s, "
                  f"rss {ours['rss']:.0f} vs {r['rss']:.0f} MiB)")
        print(f"seed: libtorrent from peerstack {reverse[0]['wall']:.2f}s, from libtorrent {reverse[1]['wall']:.2f}s, "
              f"ratio {reverse[1]['wall'] / reverse[0]['wall']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
