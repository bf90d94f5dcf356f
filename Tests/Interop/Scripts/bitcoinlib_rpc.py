"""Drives a `peerstack chain node` through python-bitcoinlib's JSON-RPC proxy, as a user of
bitcoinlib would drive bitcoind: the node's bitcoin.conf gives the port and credentials.

usage: bitcoinlib_rpc.py <datadir of node A> <datadir of node B>
Prints one JSON line of what it saw; exits non-zero on the first failure."""
import json
import os
import sys
import time

import bitcoin
import bitcoin.rpc
from bitcoin.core import COIN, COutPoint, CMutableTransaction, CMutableTxIn, CMutableTxOut, b2lx
from bitcoin.core.script import CScript, SignatureHash, SIGHASH_ALL
from bitcoin.wallet import CBitcoinSecret, P2PKHBitcoinAddress, CBitcoinAddress

bitcoin.SelectParams("regtest")
a_dir, b_dir = sys.argv[1], sys.argv[2]
a = bitcoin.rpc.Proxy(btc_conf_file=os.path.join(a_dir, "bitcoin.conf"))
b = bitcoin.rpc.Proxy(btc_conf_file=os.path.join(b_dir, "bitcoin.conf"))
seen = {}


def until(what, condition, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)


seen["start_height"] = a.getblockcount()
miner = a.getnewaddress()
hashes = list(a.generatetoaddress(101, miner))
assert len(hashes) == 101, hashes
seen["height"] = a.getblockcount()
assert seen["height"] == seen["start_height"] + 101
first = a.getblock(hashes[0])
assert first.GetHash() == hashes[0]
assert CBitcoinAddress.from_scriptPubKey(first.vtx[0].vout[0].scriptPubKey) == miner
seen["balance"] = a.getbalance()

# The node's wallet pays bitcoinlib's own key; bitcoinlib decodes the transaction.
key = CBitcoinSecret.from_secret_bytes(os.urandom(32))
mine = P2PKHBitcoinAddress.from_pubkey(key.pub)
funding_txid = a.sendtoaddress(mine, 1 * COIN)
funding = a.getrawtransaction(funding_txid)
assert funding.GetTxid() == funding_txid
index = next(n for n, out in enumerate(funding.vout) if out.scriptPubKey == mine.to_scriptPubKey())
assert funding.vout[index].nValue == COIN
a.generatetoaddress(1, miner)

# A transaction bitcoinlib builds and signs itself: relayed to B, mined by A, seen by B.
destination = P2PKHBitcoinAddress.from_pubkey(CBitcoinSecret.from_secret_bytes(os.urandom(32)).pub)
txin = CMutableTxIn(COutPoint(funding_txid, index))
tx = CMutableTransaction([txin], [CMutableTxOut(COIN - 20_000, destination.to_scriptPubKey())])
sighash = SignatureHash(mine.to_scriptPubKey(), tx, 0, SIGHASH_ALL)
txin.scriptSig = CScript([key.sign(sighash) + bytes([SIGHASH_ALL]), key.pub])
own_txid = a.sendrawtransaction(tx)
assert own_txid == tx.GetTxid()
until("B's mempool to have the transaction", lambda: b2lx(own_txid) in b.call("getrawmempool"))
block_hash = list(a.generatetoaddress(1, miner))[0]
until("B to reach A's tip", lambda: b.getbestblockhash() == block_hash)
confirmed = b.getrawtransaction(own_txid, True)
assert confirmed["blockhash"] == block_hash and confirmed["confirmations"] >= 1, confirmed
assert confirmed["tx"].GetTxid() == own_txid
seen["confirmations_on_b"] = confirmed["confirmations"]
seen["own_txid"] = b2lx(own_txid)
seen["b_height"] = b.getblockcount()

# Errors come back as Core's: a bad block hash is an IndexError from code -5.
try:
    a.getblock(b"\x00" * 32)
    raise SystemExit("getblock of an unknown hash succeeded")
except IndexError as error:
    seen["unknown_block"] = str(error)
print(json.dumps(seen, default=str))
