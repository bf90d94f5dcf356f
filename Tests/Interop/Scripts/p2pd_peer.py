#!/usr/bin/env python3
"""go-libp2p (the `p2pd` daemon of PyPI's hivemind 1.1.12 wheel) and PeerStack, both directions.
Run it inside `unshare -n` with loopback up.

  p2pd_peer.py WORKDIR PEERSTACK P2PD [SECURITY] [BYTES]

SECURITY is "noise" (default) or "tls": p2pd runs with only that security transport and
PeerStack offers only it. BYTES (default 16 MiB) is echoed each way.

p2pd is driven over its Unix-socket control protocol (p2pd.proto, every message
varint-length-delimited; encoded here by hand, the few fields needed). PeerStack dials p2pd:
`p2p identify`, `p2p ping`, and `p2p send --echo` on a protocol whose stream p2pd hands to a
handler socket here, which echoes. Then p2pd dials a `peerstack p2p listen`: CONNECT, then
STREAM_OPEN for PeerStack's echo protocol, whose control connection becomes the stream.
Prints one JSON object with what each step saw.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

ECHO = "/x/peerstack-echo"
P2PD_ECHO = "/x/p2pd-echo"
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def varint(value):
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number, value):
    """A protobuf field: ints as varints, bytes and str length-delimited, dicts as messages."""
    if isinstance(value, bool) or isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(number, value) for number, value in fields)


def read_varint(sock):
    value, shift = 0, 0
    while True:
        byte = sock.recv(1)
        if not byte:
            raise EOFError("the control socket closed")
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(min(count - len(data), 1 << 20))
        if not chunk:
            break
        data += chunk
    return data


def read_delimited(sock):
    return read_exactly(sock, read_varint(sock))


def decode_varint(data, offset):
    """The varint at `offset` in `data`, and the offset after it."""
    value, shift = 0, 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def parse(data):
    """Top-level protobuf fields as {number: [values]} (varints as ints, the rest as bytes)."""
    fields, offset = {}, 0
    while offset < len(data):
        key, offset = decode_varint(data, offset)
        number, kind = key >> 3, key & 7
        value, offset = decode_varint(data, offset)
        if kind == 2:
            value, offset = data[offset:offset + value], offset + value
        fields.setdefault(number, []).append(value)
    return fields


def b58decode(text):
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + raw


def b58encode(raw):
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = ALPHABET[digit] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def tcp_multiaddr(host, port):
    return b"\x04" + socket.inet_aton(host) + b"\x06" + port.to_bytes(2, "big")


def unix_multiaddr(path):
    return varint(400) + varint(len(path)) + path.encode()


def control(path, request):
    """One request on a new control connection; returns (response fields, the socket)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(60)
    sock.connect(path)
    sock.sendall(varint(len(request)) + request)
    response = parse(read_delimited(sock))
    if response.get(1, [0])[0] != 0:
        error = parse(response[2][0])[1][0].decode() if 2 in response else "?"
        sock.close()
        raise RuntimeError("p2pd: " + error)
    return response, sock


def echo_through(sock, payload):
    """Sends `payload` on a stream socket while reading the echo; returns what came back."""
    failure = []

    def send():
        try:
            sock.sendall(payload)
        except OSError as error:
            failure.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    echoed = read_exactly(sock, len(payload))
    sender.join()
    return echoed


def serve_echo(server):
    """p2pd's stream handler: each connection starts with a StreamInfo, then is the stream."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return

        def run(conn=conn):
            with conn:
                try:
                    read_delimited(conn)
                    while True:
                        chunk = conn.recv(1 << 16)
                        if not chunk:
                            break
                        conn.sendall(chunk)
                except OSError:
                    pass
        threading.Thread(target=run, daemon=True).start()


def main():
    work, peerstack, p2pd = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    security = sys.argv[4] if len(sys.argv) > 4 else "noise"
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 16 << 20
    ctl = os.path.join(work, "p2pd.sock")
    daemon = subprocess.Popen(
        [p2pd, "-listen", "/unix" + ctl, "-hostAddrs", "/ip4/127.0.0.1/tcp/0", "-" + security],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "p2pd.log"), "w"), text=True)
    result = {}
    try:
        peer, address = None, None
        deadline = time.time() + 30
        while time.time() < deadline and address is None:
            line = daemon.stdout.readline().strip()
            if line.startswith("Peer ID: "):
                peer = line[len("Peer ID: "):]
            elif line.startswith("/ip4/127.0.0.1/tcp/"):
                address = line
            elif not line and daemon.poll() is not None:
                break
        if not (peer and address):
            sys.exit("p2pd printed no peer ID and address")
        while not os.path.exists(ctl) and time.time() < deadline:
            time.sleep(0.05)
        identified, sock = control(ctl, message((1, 0)))
        sock.close()
        own = parse(identified[4][0])
        result["p2pd"] = {"id": peer, "address": address + "/p2p/" + peer,
                          "identifyMatches": own[1][0] == b58decode(peer)}

        target = address + "/p2p/" + peer

        # PeerStack dials p2pd: identify, ping, and an echo through p2pd's stream handler.
        handler_path = os.path.join(work, "handler.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(handler_path)
        server.listen(8)
        threading.Thread(target=serve_echo, args=(server,), daemon=True).start()
        _, sock = control(ctl, message(
            (1, 3), (4, message((1, unix_multiaddr(handler_path)), (2, P2PD_ECHO), (3, False)))))
        sock.close()
        result["identify"] = run_peerstack(peerstack, work, security, "identify", target)
        result["ping"] = run_peerstack(peerstack, work, security, "ping", target, "--count", "3")
        result["echo"] = run_peerstack(
            peerstack, work, security, "send", target, "--protocol", P2PD_ECHO, "--bytes", str(size),
            "--echo")

        # p2pd dials PeerStack and opens a stream to its echo protocol.
        listener = subprocess.Popen(
            [peerstack, "p2p", "listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--identity",
             os.path.join(work, "listener.key"), "--echo", ECHO, "--security", security],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dialled = {}
        try:
            line = listener.stdout.readline().strip()
            listen = line[len("listening on "):]
            host, port, remote = listen.split("/")[2], int(listen.split("/")[4]), listen.rsplit("/", 1)[1]
            remote_bytes = b58decode(remote)
            _, sock = control(ctl, message(
                (1, 1), (2, message((1, remote_bytes), (2, tcp_multiaddr(host, port)), (3, 30)))))
            sock.close()
            dialled["connected"] = True
            info, stream = control(ctl, message(
                (1, 2), (3, message((1, remote_bytes), (2, ECHO), (3, 30)))))
            dialled["protocol"] = parse(info[3][0])[3][0].decode()
            payload = os.urandom(size)
            started = time.time()
            echoed = echo_through(stream, payload)
            dialled["seconds"] = time.time() - started
            stream.close()
            dialled["echo"] = echoed == payload
            dialled["echoBytes"] = len(echoed)
            dialled["sha256"] = hashlib.sha256(echoed).hexdigest()[:16]
        except Exception as error:  # noqa: BLE001
            dialled["error"] = f"{type(error).__name__}: {error}"
        finally:
            listener.kill()
            listener.wait()
        result["dialled"] = dialled
        server.close()
    finally:
        daemon.kill()
        daemon.wait()
    print(json.dumps(result))


def run_peerstack(peerstack, work, security, *arguments):
    run = subprocess.run(
        [peerstack, "p2p", *arguments, "--json", "--security", security,
         "--identity", os.path.join(work, "dialer.key")],
        capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        return {"error": run.stderr.strip()[-2000:]}
    return json.loads(run.stdout)


if __name__ == "__main__":
    main()
