#!/usr/bin/python3
"""Hostile HTTP clients for PeerStack's hostile-peer tests, against 127.0.0.1 only.

  http_attack.py slowloris <host:port> <connections> <seconds> <path>
      Each connection sends the request one byte every 2 s. Prints {"closed": N, "max_after": s}:
      how many the server closed, and the longest any stayed open.
  http_attack.py pipeline <host:port> <connections> <seconds> <path>
      Each connection sends the same request pipelined as fast as it can and never reads.
      Prints {"sent": bytes}.
  http_attack.py oversized <host:port> <bytes> <seconds> <path>
      Sends a request head of <bytes> and prints {"status": code or 0, "closed": bool}.
  http_attack.py bigbody <host:port> <bytes> <seconds> <path>
      POSTs a body of <bytes> (declared in Content-Length) and prints {"status", "closed"}.
Every mode stops by itself after <seconds>.
"""
import json, socket, sys, threading, time


def connect(target):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(2)
    s.connect(target)
    return s


def slowloris(target, count, deadline, path):
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n".encode()
    socks = [(connect(target), time.time()) for _ in range(count)]
    for s, _ in socks:
        s.setblocking(False)
    closed, longest, sent = {}, 0.0, 0
    while len(closed) < count and time.time() < deadline:
        for i, (s, opened) in enumerate(socks):
            if i in closed:
                continue
            try:
                if s.recv(65536) == b"":
                    closed[i] = time.time() - opened
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.time() - opened
                continue
            try:
                if sent < len(request) - 1:  # never the last byte: the request stays incomplete
                    s.send(request[sent:sent + 1])
            except OSError:
                closed[i] = time.time() - opened
        sent += 1
        time.sleep(2)
    now = time.time()
    longest = max(list(closed.values()) + [now - o for i, (_, o) in enumerate(socks) if i not in closed])
    print(json.dumps({"closed": len(closed), "max_after": round(longest, 1)}), flush=True)


def pipeline(target, count, deadline, path):
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 64
    sent = [0]

    def one():
        while time.time() < deadline:
            try:
                s = connect(target)
                while time.time() < deadline:
                    s.sendall(request)
                    sent[0] += len(request)
            except OSError:
                time.sleep(0.05)
    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline - time.time() + 5)
    print(json.dumps({"sent": sent[0]}), flush=True)


def answer(s, deadline):
    data = b""
    s.settimeout(max(0.1, deadline - time.time()))
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return 0, True
            data += chunk
    except (socket.timeout, OSError) as error:
        print(json.dumps({"reading the status line": repr(error), "got": data[:80].decode("latin-1")}),
              file=sys.stderr, flush=True)
        return 0, False
    status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else 0
    try:
        while s.recv(65536):
            pass
        closed = True
    except ConnectionResetError:
        closed = True  # closed with our unread request bytes still in its buffer
    except (socket.timeout, OSError):
        closed = False
    return status, closed


def oversized(target, size, deadline, path):
    s = connect(target)
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Filler: ".encode() + b"a" * size + b"\r\n\r\n"
    try:
        s.sendall(head)
    except OSError as error:
        print(json.dumps({"sending the head": repr(error)}), file=sys.stderr, flush=True)
    status, closed = answer(s, deadline)
    print(json.dumps({"status": status, "closed": closed}), flush=True)


def bigbody(target, size, deadline, path):
    s = connect(target)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"{" * 65536
        for _ in range(size // len(chunk)):
            s.sendall(chunk)
    except OSError:
        pass
    status, closed = answer(s, deadline)
    print(json.dumps({"status": status, "closed": closed}), flush=True)


def main():
    mode, target, number, seconds, path = sys.argv[1:6]
    host, _, port = target.rpartition(":")
    deadline = time.time() + float(seconds)
    {"slowloris": slowloris, "pipeline": pipeline, "oversized": oversized, "bigbody": bigbody}[mode](
        (host, int(port)), int(number), deadline, path)


main()
