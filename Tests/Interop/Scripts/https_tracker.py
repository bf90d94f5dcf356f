#!/usr/bin/python3
"""A minimal BitTorrent tracker over HTTPS on 127.0.0.1, for testing https announces.

  https_tracker.py <cert.pem> <key.pem> <seconds>

Prints {"port": P}; answers /announce with compact peers (BEP 23) of the same info-hash.
"""
import json, ssl, struct, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

swarms = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, encoding="latin-1")
        if url.path != "/announce" or "info_hash" not in query or "port" not in query:
            self.reply(b"d14:failure reason11:bad requeste")
            return
        info_hash = query["info_hash"][0].encode("latin-1")
        peer = (self.client_address[0], int(query["port"][0]))
        with lock:
            peers = swarms.setdefault(info_hash, set())
            if query.get("event", [""])[0] == "stopped":
                peers.discard(peer)
            else:
                peers.add(peer)
            compact = b"".join(bytes(map(int, ip.split("."))) + struct.pack(">H", port)
                               for ip, port in peers if (ip, port) != peer)
        self.reply(b"d8:intervali60e5:peers" + str(len(compact)).encode() + b":" + compact + b"e")

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


cert, key, seconds = sys.argv[1:4]
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(json.dumps({"port": server.server_address[1]}), flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(float(seconds))
