"""Bitcoin Core's own validation code judges a `peerstack chain node`: every block the node
mined goes through libbitcoinkernel's ChainstateManager.process_block (py-bitcoinkernel) on a
regtest chainstate of its own, and blocks crafted invalid (with Core's functional-test framework,
verystable) must be refused by both the kernel and the node (`submitblock`).

usage: kernel_judge.py <node datadir> <empty kernel datadir>
Prints one JSON line; exits non-zero on the first disagreement."""
import json
import sys

import pbk
from verystable.core.blocktools import create_block, create_coinbase
from verystable.core.messages import COIN
from verystable.core.script import CScript

from core_key import P2PKHKey
from node_rpc import NodeRPC

datadir, kerneldir = sys.argv[1], sys.argv[2]
rpc = NodeRPC(datadir)


seen = {}
# The node mines a chain with transactions in it (its wallet pays P2WPKH, so witness commitments).
miner = rpc("getnewaddress")
rpc("generatetoaddress", 110, miner)
# Our key gets two coins from the node's wallet (to spend in crafted blocks).
ours = P2PKHKey()
funding = [rpc("sendtoaddress", ours.address, 1), rpc("sendtoaddress", miner, 2)]
rpc("generatetoaddress", 1, miner)
for _ in range(3):
    rpc("sendtoaddress", rpc("getnewaddress"), 0.5)
    rpc("generatetoaddress", 1, miner)
height = rpc("getblockcount")

# Every block into the kernel.
# The kernel's verdict on each block it fully checks (a block that fails only against the UTXO
# set, such as an overspending coinbase, is stored and then refused here, without an exception).
verdicts = []
callbacks = pbk.ValidationInterfaceCallbacks(
    block_checked=lambda _, block, state: verdicts.append(
        (getattr(state.validation_mode, "name", str(state.validation_mode)),
         getattr(state.block_validation_result, "name", str(state.block_validation_result)))))
chainman = pbk.load_chainman(kerneldir, pbk.ChainType.REGTEST, validation_callbacks=callbacks)
for h in range(1, height + 1):
    raw = bytes.fromhex(rpc("getblock", rpc("getblockhash", h), 0))
    chainman.process_block(pbk.Block(raw))
chain = chainman.get_active_chain()
tip_hash = rpc("getbestblockhash")
assert chain.height == height, (chain.height, height)
kernel_tip = chain.block_tree_entries[height].block_hash
assert str(kernel_tip) == tip_hash or bytes(kernel_tip.hash)[::-1].hex() == tip_hash, (kernel_tip, tip_hash)
seen["blocks_accepted_by_kernel"] = height

# The coin our key holds, and spends of it.
coin, _ = ours.coin(rpc, funding[0])


def spend(outpoint, value, corrupt=False):
    return ours.spend(outpoint, value, to=CScript([0x51]), corrupt=corrupt)


tip = rpc("getblockheader", tip_hash)
next_height = height + 1


def block(txs=(), ntime=None, bits=None, coinbase_value=None, mutate_root=False):
    coinbase = create_coinbase(next_height, script_pubkey=CScript([0x51]))
    fees = 0
    if coinbase_value is not None:
        coinbase.vout[0].nValue = coinbase_value
        coinbase.rehash()
    b = create_block(int(tip_hash, 16), coinbase, ntime or tip["time"] + 1, txlist=list(txs))
    if bits is not None:
        b.nBits = bits
    if mutate_root:
        b.hashMerkleRoot ^= 1
    b.solve()
    return b


subsidy = 50 * COIN >> (next_height // 150)
crafted = {
    "bad merkle root": block(mutate_root=True),
    "overspending coinbase": block(coinbase_value=subsidy + 1),
    "bad signature": block([spend(coin, COIN - 10_000, corrupt=True)]),
    "double spend": block([spend(coin, COIN - 10_000), spend(coin, COIN - 20_000)]),
    "wrong difficulty": block(bits=0x207FFFFE),
    "timestamp too old": block(ntime=tip["mediantime"]),
}
refused = {}
for name, b in crafted.items():
    raw = b.serialize()
    verdicts.clear()
    try:
        chainman.process_block(pbk.Block(raw))
        kernel = None
    except Exception as error:  # ProcessBlockException (or ProcessBlockHeaderException)
        kernel = type(error).__name__ + ": " + str(error)
    if kernel is None and verdicts and verdicts[-1][0] != "VALID":
        kernel = "%s (%s)" % verdicts[-1]
    if chainman.get_active_chain().height != height:
        raise SystemExit("the kernel connected the %s block" % name)
    if kernel is None:
        raise SystemExit("the kernel did not refuse the %s block" % name)
    node = rpc("submitblock", raw.hex())
    if node is None or rpc("getbestblockhash") != tip_hash:
        raise SystemExit("the node accepted the %s block" % name)
    refused[name] = {"kernel": kernel, "node": node}
seen["refused"] = refused

# A valid block the node mines on top is still accepted by the kernel.
new_hash = rpc("generatetoaddress", 1, miner)[0]
chainman.process_block(pbk.Block(bytes.fromhex(rpc("getblock", new_hash, 0))))
assert chainman.get_active_chain().height == height + 1
seen["final_height"] = height + 1
del chainman
print(json.dumps(seen))
