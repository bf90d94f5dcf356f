#!/usr/bin/python3
"""Hostile BitTorrent peers that attack a seeder, for PeerStack's hostile-peer tests (127.0.0.1).

  flood_peer.py flood <file.torrent> <host:port> <connections> <seconds>
      Each connection completes the handshake (BEP 3, 10), says interested, then sends block
      requests for every piece and ut_metadata piece requests as fast as it can and never reads
      (its receive buffer is tiny). A connection the seeder drops is made again.
  flood_peer.py silent <file.torrent> <host:port> <connections> <seconds>
      Opens the connections and sends nothing; prints {"closed": N, "after": s} once every one
      was closed by the other side (or the time ran out).
Prints {"sent": bytes} at the end of a flood. Stops by itself after <seconds>.
"""
import json, socket, struct, sys, threading, time

from torrent_file import info_hash


def torrent(path):
    top, digest = info_hash(open(path, "rb").read())
    info = top[b"info"]
    count = (info[b"length"] + info[b"piece length"] - 1) // info[b"piece length"]
    return digest, info[b"piece length"], count


def flood(target, info_hash, piece_length, count, deadline, sent):
    host, port = target
    while time.time() < deadline:
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(2)
            sock.connect((host, port))
            reserved = bytearray(8); reserved[5] |= 0x10  # BEP 10
            sock.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + info_hash + b"-FL0001-" + b"f" * 12)
            ext = b"d1:md11:ut_metadatai3eee"
            sock.sendall(struct.pack(">IBB", 2 + len(ext), 20, 0) + ext)
            sock.sendall(struct.pack(">IB", 1, 2))  # interested
            metadata_request = b"d8:msg_typei0e5:piecei0ee"
            batch = b"".join(
                struct.pack(">IBIII", 13, 6, p % count, 0, 16384) for p in range(256))
            meta = b"".join(struct.pack(">IBB", 2 + len(metadata_request), 20, 1) + metadata_request
                            for _ in range(64))
            while time.time() < deadline:
                sock.sendall(batch + meta)
                sent[0] += len(batch) + len(meta)
        except (OSError, ConnectionError):
            time.sleep(0.05)
        finally:
            try:
                sock.close()
            except Exception:
                pass


def silent(target, connections, deadline):
    socks = []
    for _ in range(connections):
        s = socket.socket()
        s.settimeout(2)
        s.connect(target)
        s.setblocking(False)
        socks.append(s)
    start = time.time()
    open_ = set(range(len(socks)))
    while open_ and time.time() < deadline:
        for i in list(open_):
            try:
                if socks[i].recv(1) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
        time.sleep(0.05)
    print(json.dumps({"closed": connections - len(open_), "after": round(time.time() - start, 2)}), flush=True)


def main():
    mode, path, target, connections, seconds = sys.argv[1:6]
    host, _, port = target.rpartition(":")
    target = (host, int(port))
    deadline = time.time() + float(seconds)
    info_hash, piece_length, count = torrent(path)
    if mode == "silent":
        silent(target, int(connections), deadline)
        return
    sent = [0]
    threads = [threading.Thread(target=flood, args=(target, info_hash, piece_length, count, deadline, sent),
                                daemon=True) for _ in range(int(connections))]
    print(json.dumps({"started": len(threads)}), flush=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join(float(seconds) + 5)
    print(json.dumps({"sent": sent[0]}), flush=True)


main()
