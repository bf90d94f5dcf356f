#!/usr/bin/python3
"""A libtorrent peer for PeerStack's interop tests and benchmarks, on loopback only.

  lt_peer.py seed <file.torrent> <save_path> <port> <seconds> [upload_limit_bytes_per_s]
      Seeds (seed_mode: no initial check) and prints a JSON line {"port": P} once listening,
      then a final JSON line with upload totals. Exits after <seconds> or when stdin closes;
      a line "connect host:port" on stdin makes it dial that peer, "stats" prints
      {"uploaded_now": bytes, "peers_now": n}.
  lt_peer.py get <file.torrent|magnet> <save_path> <port> <seconds> [host:port ...]
      Downloads, connecting to the given peers, and prints {"complete": bool, "seconds": s, ...}.
      With --upload-mode among the peers it requests nothing and stays a leecher; with
      --keep-seeding it goes on seeding after completing, until <seconds> or stdin closes.
      Peers may also come from the torrent's tracker.

DHT, LSD, UPnP, NAT-PMP and uTP are off; nothing leaves the machine. Anywhere among the
arguments, --encryption=forced makes it speak MSE/PE with RC4 only, both ways (libtorrent's
out_enc_policy and in_enc_policy pe_forced, allowed_enc_level pe_rc4); --encryption=disabled
makes it refuse MSE both ways (pe_disabled); --utp-only makes it speak uTP only (TCP off both
ways); --ipv6 makes it listen on [::1] instead of 127.0.0.1; --host=ADDRESS on ADDRESS (the end
of an emulated link from tun_link.py); --log-peers prints libtorrent's peer connect, disconnect
and error alerts on stderr.
"""
import json
import os
import select
import sys
import time

import libtorrent as lt


# Settings the flags below change, over the defaults of session(); the address it listens on.
SETTINGS = {}
HOST = "127.0.0.1"
LOG_PEERS = False


def session(port):
    return lt.session({
        "listen_interfaces": f"{HOST}:{port}",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True, "min_reconnect_time": 1,
        "dht_bootstrap_nodes": "",
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | (lt.alert.category_t.peer_notification | lt.alert.category_t.connect_notification if LOG_PEERS else 0),
        **SETTINGS,
    })


def log_peer_alerts(ses):
    """With --log-peers: libtorrent's connect, disconnect and peer-error alerts, on stderr."""
    if LOG_PEERS:
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.peer_connect_alert, lt.peer_disconnected_alert, lt.peer_error_alert,
                                  lt.incoming_connection_alert)):
                print(f"{time.time():.3f} {alert.message()}", file=sys.stderr, flush=True)


def params(source, save_path):
    if source.startswith("magnet:"):
        atp = lt.parse_magnet_uri(source)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(source)
    atp.save_path = os.path.abspath(save_path)
    atp.flags = atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    return atp


def stdin_commands(handle):
    """Handles waiting stdin lines; returns False once stdin is closed."""
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if not ready:
        return True
    line = sys.stdin.readline()
    if line == "":
        return False
    if line.strip() == "stats":
        status = handle.status()
        print(json.dumps({"uploaded_now": status.all_time_upload, "peers_now": status.num_peers}), flush=True)
    if line.startswith("connect "):
        host, _, port = line.split()[1].rpartition(":")
        handle.connect_peer((host.strip("[]"), int(port)))
    return True


def seed(source, save_path, port, seconds, upload_limit="0"):
    ses = session(port)
    if int(upload_limit) > 0:
        ses.apply_settings({"upload_rate_limit": int(upload_limit)})
        # Peers on loopback are in libtorrent's "local" peer class, which the global limit does
        # not cover: limit that class too, or the limit does nothing here.
        local = ses.get_peer_class(lt.session.local_peer_class_id)
        local["upload_limit"] = int(upload_limit)
        ses.set_peer_class(lt.session.local_peer_class_id, local)
    atp = params(source, save_path)
    atp.flags |= lt.torrent_flags.seed_mode
    handle = ses.add_torrent(atp)
    print(json.dumps({"port": ses.listen_port()}), flush=True)
    deadline = time.time() + float(seconds)
    while time.time() < deadline and stdin_commands(handle):
        log_peer_alerts(ses)
        time.sleep(0.05)
    status = handle.status()
    print(json.dumps({"uploaded": status.all_time_upload, "peers": status.num_peers}), flush=True)


def get(source, save_path, port, seconds, *peers):
    ses = session(port)
    atp = params(source, save_path)
    if "--upload-mode" in peers:
        # Stays a leecher that requests nothing (keeps its connections up, for PEX tests).
        atp.flags |= lt.torrent_flags.upload_mode
        peers = tuple(p for p in peers if p != "--upload-mode")
    keep_seeding = "--keep-seeding" in peers
    peers = tuple(p for p in peers if p != "--keep-seeding")
    handle = ses.add_torrent(atp)
    print(json.dumps({"port": ses.listen_port()}), flush=True)
    for peer in peers:
        host, _, peer_port = peer.rpartition(":")
        handle.connect_peer((host.strip("[]"), int(peer_port)))
    start = time.time()
    deadline = start + float(seconds)
    complete = False
    connected = set()
    while time.time() < deadline:
        status = handle.status()
        if status.is_seeding:
            complete = True
            break
        # Report each newly connected peer (for PEX tests).
        for info in handle.get_peer_info():
            address = f"{info.ip[0]}:{info.ip[1]}"
            if address not in connected:
                connected.add(address)
                print(json.dumps({"connected": address}), flush=True)
        log_peer_alerts(ses)
        time.sleep(0.05)
    elapsed = time.time() - start
    status = handle.status()
    print(json.dumps({"complete": complete, "seconds": elapsed, "downloaded": status.all_time_download,
                      "valid_pieces": sum(1 for p in status.pieces if p)}), flush=True)
    while keep_seeding and time.time() < deadline and stdin_commands(handle):
        time.sleep(0.05)


if __name__ == "__main__":
    if "--encryption=forced" in sys.argv:
        sys.argv.remove("--encryption=forced")
        SETTINGS.update({"out_enc_policy": int(lt.enc_policy.forced), "in_enc_policy": int(lt.enc_policy.forced),
                           "allowed_enc_level": int(lt.enc_level.rc4), "prefer_rc4": True})
    if "--encryption=disabled" in sys.argv:
        sys.argv.remove("--encryption=disabled")
        SETTINGS.update({"out_enc_policy": int(lt.enc_policy.disabled),
                           "in_enc_policy": int(lt.enc_policy.disabled)})
    if "--utp-only" in sys.argv:
        sys.argv.remove("--utp-only")
        SETTINGS.update({"enable_outgoing_utp": True, "enable_incoming_utp": True,
                           "enable_outgoing_tcp": False, "enable_incoming_tcp": False})
    if "--ipv6" in sys.argv:
        sys.argv.remove("--ipv6")
        HOST = "[::1]"
    if "--log-peers" in sys.argv:
        sys.argv.remove("--log-peers")
        LOG_PEERS = True
    for flag in [a for a in sys.argv if a.startswith("--host=")]:
        sys.argv.remove(flag)
        HOST = flag.split("=", 1)[1]
    command, args = sys.argv[1], sys.argv[2:]
    {"seed": seed, "get": get}[command](*args)
