"""Bitcoin Core's functional-test P2P peer (verystable's P2PInterface) against a `peerstack chain
node`: version/verack, headers sync with getheaders, blocks fetched with getdata and checked, and a
transaction it signs itself relayed by the node to a second node.

usage: core_p2p.py <datadir A> <P2P port of A> <datadir B>
Prints one JSON line; exits non-zero on the first failure."""
import json
import sys

from verystable.core.messages import CInv, MSG_BLOCK, MSG_WITNESS_FLAG, msg_getdata, msg_getheaders, msg_tx
from verystable.core.p2p import NetworkThread, P2PInterface

from core_key import P2PKHKey
from node_rpc import NodeRPC

a_dir, a_port, b_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a, b = NodeRPC(a_dir), NodeRPC(b_dir)
seen = {}

miner = a("getnewaddress")
a("generatetoaddress", 20, miner)


class Peer(P2PInterface):
    def __init__(self):
        super().__init__()
        self.headers = []
        self.blocks = {}

    def on_headers(self, message):
        self.headers.extend(message.headers)

    def on_block(self, message):
        message.block.rehash()
        self.blocks[message.block.sha256] = message.block


network = NetworkThread()
network.start()
peer = Peer()
# verystable 28.1.0.dev0 reads this attribute (newer Core) but its peer_connect never sets it.
peer.p2p_connected_to_node = True
peer.peer_connect(dstaddr="127.0.0.1", dstport=a_port, net="regtest", timeout_factor=1,
                  supports_v2_p2p=False, send_version=True)()
peer.wait_until(lambda: peer.is_connected, timeout=30, check_connected=False)
peer.wait_for_verack(timeout=30)
seen["node_version"] = peer.last_message["version"].nVersion
seen["node_agent"] = str(peer.last_message["version"].strSubVer)

getheaders = msg_getheaders()
getheaders.locator.vHave = [int(a("getblockhash", 0), 16)]
peer.send_message(getheaders)
peer.wait_until(lambda: len(peer.headers) >= 20, timeout=30)
for height, header in enumerate(peer.headers[:20], start=1):
    header.rehash()
    assert "%064x" % header.sha256 == a("getblockhash", height), height
seen["headers"] = len(peer.headers)

peer.send_message(msg_getdata([CInv(MSG_BLOCK | MSG_WITNESS_FLAG, h.sha256) for h in peer.headers[:20]]))
peer.wait_until(lambda: len(peer.blocks) >= 20, timeout=30)
for header in peer.headers[:20]:
    block = peer.blocks[header.sha256]
    assert block.is_valid(), "%064x" % header.sha256  # proof of work and merkle root
seen["blocks"] = len(peer.blocks)

# A coin for a key of ours, confirmed; then a spend of it, signed here, sent over P2P to A.
ours = P2PKHKey()
a("generatetoaddress", 100, miner)
funding_txid = a("sendtoaddress", ours.address, 1)
a("generatetoaddress", 1, miner)
outpoint, value = ours.coin(a, funding_txid)
tx = ours.spend(outpoint, value - 10_000)
peer.send_and_ping(msg_tx(tx))
txid = "%064x" % tx.sha256
assert txid in a("getrawmempool"), "node A did not take the transaction"
peer.wait_until(lambda: txid in b("getrawmempool"), timeout=30, check_connected=False)
seen["relayed_to_b"] = txid
peer.peer_disconnect()
network.close()
print(json.dumps(seen))
