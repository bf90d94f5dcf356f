"""JSON-RPC to a `peerstack chain node` as bitcoin-cli would: the port and cookie from its data
directory, JSON-RPC 2.0 over HTTP with Basic credentials."""
import base64
import json
import urllib.request


class NodeRPC:
    def __init__(self, datadir):
        self.endpoint = open(datadir + "/rpc.port").read().strip()
        self.auth = "Basic " + base64.b64encode(open(datadir + "/.cookie").read().strip().encode()).decode()

    def __call__(self, method, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(
            "http://" + self.endpoint + "/", body,
            {"Content-Type": "application/json", "Authorization": self.auth})
        reply = json.loads(urllib.request.urlopen(request, timeout=60).read())
        if reply.get("error"):
            raise SystemExit("%s: %s" % (method, reply["error"]))
        return reply["result"]
