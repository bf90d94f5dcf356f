#!/usr/bin/python3
"""libtorrent's view of torrents, for PeerStack's interop tests. Prints JSON.

  lt_tool.py info <file.torrent>
  lt_tool.py create <path> <out.torrent> <mode> [piece_size]   mode: v1 | v1pad | hybrid
  lt_tool.py autopiece <total_size>
  lt_tool.py recheck <file.torrent> <save_path> <timeout_seconds>

Only loopback is ever touched: the session listens on 127.0.0.1 with DHT, LSD, UPnP and
NAT-PMP off.
"""
import json
import os
import sys
import time

import libtorrent as lt


def files_of(ti):
    fs = ti.files()
    return [
        {"path": fs.file_path(i), "size": fs.file_size(i), "pad": bool(int(fs.file_flags(i)) & int(lt.file_storage.flag_pad_file)),
         "offset": fs.file_offset(i)}
        for i in range(fs.num_files())
    ]


def info(path):
    ti = lt.torrent_info(path)
    print(json.dumps({
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "private": ti.priv(),
        "files": files_of(ti),
        "trackers": [t.url for t in ti.trackers()],
        "web_seeds": [w["url"] for w in ti.web_seeds()],
        "comment": ti.comment(),
    }))


def create(path, out, mode, piece_size=0):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = {"v1": lt.create_torrent.v1_only,
             "v1pad": lt.create_torrent.v1_only | lt.create_torrent.canonical_files,
             "hybrid": 0}[mode]
    ct = lt.create_torrent(fs, int(piece_size), flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    print(json.dumps({"piece_length": ct.piece_length()}))


def autopiece(total):
    fs = lt.file_storage()
    fs.add_file("x", int(total))
    print(json.dumps({"piece_length": lt.create_torrent(fs, 0, lt.create_torrent.v1_only).piece_length()}))


def recheck(path, save_path, timeout):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(path)
    atp.save_path = os.path.abspath(save_path)
    # Not paused (a paused torrent never runs its check) and not queued behind others.
    atp.flags = atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    handle = ses.add_torrent(atp)
    deadline = time.time() + float(timeout)
    checked = False
    while time.time() < deadline and not checked:
        ses.wait_for_alert(200)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.torrent_checked_alert):
                checked = True
    status = handle.status()
    print(json.dumps({
        "checked": checked,
        "info_hash": str(handle.info_hashes().v1),
        "num_pieces": atp.ti.num_pieces(),
        "valid_pieces": sum(1 for p in status.pieces if p),
        "is_seeding": status.is_seeding,
        "files": files_of(atp.ti),
    }))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"info": info, "create": create, "autopiece": autopiece, "recheck": recheck}[command](*args)
