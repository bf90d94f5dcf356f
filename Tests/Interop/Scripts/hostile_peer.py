#!/usr/bin/python3
"""A misbehaving BitTorrent peer for PeerStack's hostile-peer tests, on 127.0.0.1 only.

  hostile_peer.py <mode> <file.torrent> <data_path> <port> <seconds>

Listens on <port>, prints {"port": P}, and for every connection completes the handshake and then:
  corrupt     claims every piece and serves blocks with one byte flipped
  oversized   sends a length prefix of 2^31 - 1
  bitfield    sends a bitfield one byte too long
  request     asks for a block beyond the end of the torrent
Exits after <seconds>.
"""
import json, socket, struct, sys, threading, time

from torrent_file import info_hash


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def serve(conn, mode, info_hash, info, data_path):
    piece_length = info[b"piece length"]
    total = info[b"length"]
    count = (total + piece_length - 1) // piece_length
    try:
        theirs = recv_exact(conn, 68)
        conn.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-XX0001-" + b"h" * 12)
        if mode == "oversized":
            conn.sendall(struct.pack(">I", 0x7FFFFFFF)); time.sleep(2); return
        bits = bytearray((count + 7) // 8)
        for p in range(count):
            bits[p // 8] |= 0x80 >> (p % 8)
        if mode == "bitfield":
            bits += b"\x00"
        conn.sendall(struct.pack(">IB", 1 + len(bits), 5) + bits)
        if mode == "request":
            conn.sendall(struct.pack(">IBIII", 13, 6, count + 5, 0, 16384)); time.sleep(2); return
        conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
        with open(data_path, "rb") as f:
            while True:
                length = struct.unpack(">I", recv_exact(conn, 4))[0]
                body = recv_exact(conn, length) if length else b""
                if body[:1] == b"\x06":
                    index, begin, size = struct.unpack(">III", body[1:13])
                    f.seek(index * piece_length + begin)
                    block = bytearray(f.read(size))
                    block[0] ^= 0xFF
                    conn.sendall(struct.pack(">IBII", 9 + len(block), 7, index, begin) + block)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def main():
    mode, torrent, data_path, port, seconds = sys.argv[1:6]
    top, digest = info_hash(open(torrent, "rb").read())
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(port)))
    server.listen(8)
    server.settimeout(0.2)
    print(json.dumps({"port": server.getsockname()[1]}), flush=True)
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn, mode, digest, top[b"info"], data_path), daemon=True).start()


main()
