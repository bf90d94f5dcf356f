"""A P2PKH key of the test's own, with Bitcoin Core's functional-test framework (verystable):
its address, the coin a node's wallet sent it, and spends of that coin it signs itself."""
import os

import verystable.core.address as addresses
from verystable.core.key import ECKey
from verystable.core.messages import COutPoint, CTransaction, CTxIn, CTxOut, tx_from_hex
from verystable.core.script import (
    CScript, LegacySignatureHash, OP_CHECKSIG, OP_DUP, OP_EQUALVERIFY, OP_HASH160, SIGHASH_ALL, hash160)


class P2PKHKey:
    def __init__(self):
        self.key = ECKey()
        self.key.set(os.urandom(32), True)  # verystable refuses ECKey.generate (it guards real money)
        self.pubkey = self.key.get_pubkey().get_bytes()
        self.script = CScript([OP_DUP, OP_HASH160, hash160(self.pubkey), OP_EQUALVERIFY, OP_CHECKSIG])
        self.address = addresses.key_to_p2pkh(self.pubkey, main=False)

    def coin(self, rpc, txid):
        """The outpoint and value this key holds in transaction `txid` (read over RPC)."""
        funding = tx_from_hex(rpc("getrawtransaction", txid, False))
        vout = next(i for i, out in enumerate(funding.vout) if out.scriptPubKey == self.script)
        return COutPoint(int(txid, 16), vout), funding.vout[vout].nValue

    def spend(self, outpoint, value, to=None, corrupt=False):
        """A transaction spending `outpoint` to `to` (this key by default), signed; `corrupt`
        signs the wrong hash."""
        tx = CTransaction()
        tx.vin = [CTxIn(outpoint, b"", 0xFFFFFFFF)]
        tx.vout = [CTxOut(value, to if to is not None else self.script)]
        sighash, _ = LegacySignatureHash(self.script, tx, 0, SIGHASH_ALL)
        if corrupt:
            sighash = bytes(32)
        tx.vin[0].scriptSig = CScript([self.key.sign_ecdsa(sighash) + bytes([SIGHASH_ALL]), self.pubkey])
        tx.rehash()
        return tx
