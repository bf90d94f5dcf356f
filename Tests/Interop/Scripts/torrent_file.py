"""Reading .torrent files for the interop scripts: a minimal bencode decoder that records where
each dictionary value lies (so the info-hash is taken over the info dictionary's own bytes)."""
import hashlib


def bdecode(data, i=0):
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i); return int(data[i + 1:j]), j + 1
    if c == b"l":
        i += 1; out = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i); out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1; out = {}; start = {}
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i); s = i; v, i = bdecode(data, i); out[k] = v; start[k] = (s, i)
        out[b"__spans__"] = start
        return out, i + 1
    j = data.index(b":", i); n = int(data[i:j]); return data[j + 1:j + 1 + n], j + 1 + n


def info_hash(raw):
    """The torrent's top dictionary, and the SHA-1 of its `info` value's bytes."""
    top, _ = bdecode(raw)
    s, e = top[b"__spans__"][b"info"]
    return top, hashlib.sha1(raw[s:e]).digest()
