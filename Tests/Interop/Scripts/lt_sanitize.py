#!/usr/bin/env python3
"""Torrents with malformed paths, built by hand with libtorrent's own bencoder, and the paths
libtorrent (python3-libtorrent 2.0) gives their files.

  lt_sanitize.py OUTDIR

Writes OUTDIR/<case>.torrent for each case and prints one JSON object: for each case either
{"paths": [file_path(i) of every file that is not padding]} or {"refused": libtorrent's error}.
"""
import json
import os
import sys

import libtorrent as lt

PIECE = 16384


def multi(paths, name=b"top", extra=None):
    files = [{b"length": 10, b"path": p} for p in paths]
    if extra:
        files += extra
    total = sum(f[b"length"] for f in files)
    return {b"name": name, b"piece length": PIECE, b"pieces": b"\0" * 20 * ((total + PIECE - 1) // PIECE),
            b"files": files}


def single(name):
    return {b"name": name, b"piece length": PIECE, b"pieces": b"\0" * 20, b"length": 10}


CASES = {
    "dotdot": multi([[b"..", b"evil"], [b"a", b"..", b"b"]]),
    "dot": multi([[b".", b"x"], [b"a", b".", b"y"]]),
    "empty-element": multi([[b"", b"x"], [b"a", b"", b"y"]]),
    "leading-slash": multi([[b"/etc", b"passwd"], [b"/abs"]]),
    "slash-inside": multi([[b"a/b", b"c"]]),
    "nul": multi([[b"a\0b"]]),
    "control": multi([[b"a\x01b"], [b"a\x7fb"]]),
    "backslash-colon": multi([[b"a\\b"], [b"a:b"]]),
    "invalid-utf8": multi([[b"\xff\xfe"], [b"\xc0\xaf"], [b"\xed\xa0\x80"], [b"\xe6\x97"], [b"\xf8\x88\x80\x80\x80z"]]),
    "bidi": multi([["a\u202eb".encode()]]),
    "unicode": multi([["日本語".encode(), "é.txt".encode()], ["😀".encode()]]),
    "name-dotdot": multi([[b"x"]], name=b".."),
    "name-slash": multi([[b"x"]], name=b"a/b"),
    "name-empty": multi([[b"x"]], name=b""),
    "single-dotdot": single(b".."),
    "single-slash": single(b"/etc/passwd"),
    "empty-path": multi([[]]),
    "only-dots": multi([[b".."], [b"."]]),
    "duplicates": multi([[b"a"], [b"a"], [b"a.1"], [b"x.tar.gz"], [b"x.tar.gz"], [b".hidden"], [b".hidden"]]),
    "file-then-directory": multi([[b"d"], [b"d", b"e"], [b"f", b"g", b"h"], [b"f", b"g"]]),
    "sanitised-clash": multi([[b"a/b"], [b"ab"]]),
    "long-element": multi([[b"x" * 300], [b"y" * 300 + b".mkv"]]),
    "trailing-space-dot": multi([[b"a "], [b"b."]]),
    "pad-without-path": multi([[b"a"]], extra=[{b"length": PIECE - 10, b"attr": b"p"}, {b"length": 5, b"path": [b"b"]}]),
    "symlinks": multi([[b"a"]], extra=[
        {b"length": 0, b"attr": b"l", b"path": [b"inside"], b"symlink path": [b"a"]},
        {b"length": 0, b"attr": b"l", b"path": [b"outside"], b"symlink path": [b"..", b"..", b"etc"]}]),
}
CASES["path-utf8"] = multi([[b"raw"]])
# Piece lengths: libtorrent 2.0 takes up to 1 GiB - 1, and refuses 1 GiB.
for label, length in (("piece-1gib-minus-1", (1 << 30) - 1), ("piece-1gib", 1 << 30)):
    CASES[label] = {**single(b"big"), b"piece length": length}
CASES["path-utf8"][b"files"][0][b"path.utf-8"] = [b"utf", b"8"]


def main():
    out = sys.argv[1]
    result = {}
    for name, info in CASES.items():
        data = lt.bencode({b"info": info})
        with open(os.path.join(out, name + ".torrent"), "wb") as f:
            f.write(data)
        try:
            files = lt.torrent_info(data).files()
            result[name] = {"paths": [files.file_path(i) for i in range(files.num_files())
                                      if not files.file_flags(i) & lt.file_storage.flag_pad_file]}
        except RuntimeError as error:
            result[name] = {"refused": str(error)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
