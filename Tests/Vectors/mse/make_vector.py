#!/usr/bin/python3
"""Writes rc4-handshake.json: an MSE/PE handshake (Vuze's Message Stream Encryption, as libtorrent
and Transmission speak it) computed by an implementation independent of PeerStack's: Python's
pow() for the 768-bit Diffie-Hellman, hashlib's SHA-1, and the cryptography package's ARC4.
Fixed private keys and paddings make it reproducible: run it again and the file is the same."""
import hashlib
import json
import os

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519"
        "B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
sha1 = lambda *parts: hashlib.sha1(b"".join(parts)).digest()
be = lambda value, n: value.to_bytes(n, "big")


def rc4(key):
    cipher = Cipher(ARC4(key), mode=None).encryptor()
    cipher.update(bytes(1024))
    return cipher


xa = bytes(range(1, 21))
xb = bytes(range(101, 121))
ya, yb = be(pow(2, int.from_bytes(xa, "big"), P), 96), be(pow(2, int.from_bytes(xb, "big"), P), 96)
s = be(pow(int.from_bytes(yb, "big"), int.from_bytes(xa, "big"), P), 96)
assert s == be(pow(int.from_bytes(ya, "big"), int.from_bytes(xb, "big"), P), 96)
skey = bytes.fromhex("1debb38ae796aff6fc7387d9fbb61db44c7a9d14")
pad_a, pad_b, pad_c, pad_d = b"A" * 7, b"B" * 13, b"C" * 3, b"D" * 5
ia = b"\x13BitTorrent protocol" + bytes(8) + skey + b"-PS0100-abcdefghijkl"
a_out, b_out = rc4(sha1(b"keyA", s, skey)), rc4(sha1(b"keyB", s, skey))
message1 = ya + pad_a
message2 = yb + pad_b
message3 = (sha1(b"req1", s) + bytes(x ^ y for x, y in zip(sha1(b"req2", skey), sha1(b"req3", s)))
            + a_out.update(bytes(8) + be(0x03, 4) + be(len(pad_c), 2) + pad_c + be(len(ia), 2)) + a_out.update(ia))
message4 = b_out.update(bytes(8) + be(0x02, 4) + be(len(pad_d), 2) + pad_d)
stream_a = a_out.update(b"hello from A")
stream_b = b_out.update(b"hello from B")
vector = {
    "comment": "MSE handshake, RC4 selected; made by make_vector.py (Python pow, hashlib, cryptography ARC4)",
    "privateKeyA": xa.hex(), "privateKeyB": xb.hex(), "infoHash": skey.hex(),
    "padA": pad_a.hex(), "padB": pad_b.hex(), "padC": pad_c.hex(), "padD": pad_d.hex(), "initialPayload": ia.hex(),
    "provide": 3, "select": 2,
    "aToB": (message1 + message3 + stream_a).hex(), "bToA": (message2 + message4 + stream_b).hex(),
    "streamA": b"hello from A".hex(), "streamB": b"hello from B".hex(),
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rc4-handshake.json"), "w") as out:
    json.dump(vector, out, indent=1)
    out.write("\n")
