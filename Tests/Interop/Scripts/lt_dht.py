#!/usr/bin/python3
"""A libtorrent DHT node for PeerStack's interop tests, on loopback only.

  lt_dht.py <port> <seconds> [--ipv6]
      Runs a libtorrent session with only the DHT on (no bootstrap hosts: nothing is contacted
      unless a command names it; --ipv6: on [::1], an IPv6 node of BEP 32) and prints {"port": P}
      once listening. Then
      reads commands on stdin, one a line, and answers each with one JSON line:

      add_node HOST:PORT                -> {"added": "HOST:PORT"}
      nodes                             -> {"nodes": N}            (routing table size)
      get_peers HASH                    -> {"get_peers": HASH, "peers": ["ip:port", ...]}
      put_immutable TEXT                -> {"put": TARGET, "success": N}   (TEXT as a bencoded string)
      get_immutable TARGET              -> {"immutable": TARGET, "value": TEXT or null}
      put_mutable SEED PUBLIC SALT TEXT -> {"put": PUBLIC, "success": N, "seq": N}  (Ed25519 seed, key: hex)
      get_mutable PUBKEYHEX SALT        -> {"mutable": PUBKEYHEX, "value": TEXT or null, "seq": N}
      seed TORRENT SAVE_PATH            -> {"seeding": INFOHASH}  (announced to the DHT with the
                                           listen port; the Python binding has no dht_announce flags)

      SALT "-" means no salt. Exits after <seconds> or when stdin closes.
"""
import hashlib
import json
import select
import sys
import time
import warnings

import libtorrent as lt


def say(obj):
    print(json.dumps(obj), flush=True)


def make_session(port, host="127.0.0.1"):
    settings = {
        "listen_interfaces": f"{host}:{port}",
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True, "min_reconnect_time": 1,
        "dht_bootstrap_nodes": "",
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification,
    }
    # Several nodes share 127.0.0.1 here: relax the rules meant for the open Internet.
    for name, value in [("dht_restrict_routing_ips", False), ("dht_restrict_search_ips", False),
                        ("dht_prefer_verified_node_ids", False), ("dht_ignore_dark_internet", False),
                        ("dht_enforce_node_id", False)]:
        settings[name] = value
    # All at construction: a DHT started with libtorrent's defaults would look up a public router.
    known = lt.default_settings()
    return lt.session({key: value for key, value in settings.items() if key in known})


def wait_alert(session, kind, match, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        session.wait_for_alert(200)
        for alert in session.pop_alerts():
            if isinstance(alert, kind) and match(alert):
                return alert
    return None


def nodes(session):
    return session.status().dht_nodes


def text_of(entry):
    value = entry.get("value") if isinstance(entry, dict) else entry
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ipv6 = "--ipv6" in sys.argv
    if ipv6:
        sys.argv.remove("--ipv6")
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    session = make_session(port, "[::1]" if ipv6 else "127.0.0.1")
    deadline = time.time() + seconds
    while session.listen_port() == 0 and time.time() < deadline:
        time.sleep(0.05)
    say({"port": session.listen_port()})
    handles = []
    while time.time() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        session.pop_alerts()
        if not ready:
            continue
        line = sys.stdin.readline()
        if line == "":
            break
        command, _, rest = line.rstrip("\n").partition(" ")
        # The last argument (TEXT) may hold spaces.
        words = [command] + rest.split(" ", {"put_immutable": 0, "put_mutable": 3}.get(command, -1))
        if command == "add_node":
            host, _, p = words[1].rpartition(":")
            session.add_dht_node((host.strip("[]"), int(p)))
            say({"added": words[1]})
        elif command == "nodes":
            say({"nodes": nodes(session)})
        elif command == "get_peers":
            target = lt.sha1_hash(bytes.fromhex(words[1]))
            session.dht_get_peers(target)
            alert = wait_alert(session, lt.dht_get_peers_reply_alert,
                               lambda a: str(a.info_hash) == words[1], 30)
            peers = [] if alert is None else [f"{ip}:{p}" for ip, p in alert.peers()]
            say({"get_peers": words[1], "peers": peers})
        elif command == "put_immutable":
            target = session.dht_put_immutable_item(words[1])
            alert = wait_alert(session, lt.dht_put_alert, lambda a: str(a.target) == str(target), 30)
            say({"put": str(target), "success": -1 if alert is None else alert.num_success})
        elif command == "get_immutable":
            session.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(words[1])))
            alert = wait_alert(session, lt.dht_immutable_item_alert,
                               lambda a: str(a.target) == words[1], 30)
            value = None if alert is None or alert.item is None else text_of(alert.item)
            say({"immutable": words[1], "value": value})
        elif command == "put_mutable":
            seed, public, salt, text = bytes.fromhex(words[1]), bytes.fromhex(words[2]), words[3], words[4]
            salt = b"" if salt == "-" else salt.encode()
            # libtorrent's 64-byte secret key: SHA-512 of the seed, clamped (RFC 8032, 5.1.5).
            secret = bytearray(hashlib.sha512(seed).digest())
            secret[0] &= 248
            secret[31] &= 63
            secret[31] |= 64
            secret = bytes(secret)
            session.dht_put_mutable_item(secret, public, text.encode(), salt)
            alert = wait_alert(session, lt.dht_put_alert, lambda a: bytes(a.public_key) == public, 30)
            say({"put": public.hex(), "success": -1 if alert is None else alert.num_success,
                 "seq": -1 if alert is None else alert.seq})
        elif command == "get_mutable":
            public, salt = bytes.fromhex(words[1]), words[2]
            salt = b"" if salt == "-" else salt.encode()
            session.dht_get_mutable_item(public, salt)
            alert = wait_alert(session, lt.dht_mutable_item_alert,
                               lambda a: bytes(a.key) == public and a.authoritative, 30)
            if alert is None:
                say({"mutable": words[1], "value": None, "seq": -1})
            else:
                say({"mutable": words[1], "value": text_of(alert.item), "seq": alert.seq})
        elif command == "seed":
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(words[1])
            atp.save_path = words[2]
            atp.flags = (atp.flags | lt.torrent_flags.seed_mode) & ~lt.torrent_flags.auto_managed \
                & ~lt.torrent_flags.paused
            handle = session.add_torrent(atp)
            handles.append(handle)
            handle.force_dht_announce()
            say({"seeding": str(atp.ti.info_hashes().v1)})
        else:
            say({"error": f"unknown command {command}"})


if __name__ == "__main__":
    main()
