#!/usr/bin/env python3
"""py-libp2p and PeerStack's libp2p stack, both directions. Run inside `unshare -n` with loopback
up, with the Python of a venv holding py-libp2p 0.8.1 (trio).

  pylibp2p_peer.py WORKDIR PEERSTACK [SECURITY]

SECURITY is "noise" (default: py-libp2p's default security choices) or "tls" (py-libp2p offers
only its TLS 1.3 transport, and PeerStack only `/tls/1.0.0`).

py-libp2p listens (PeerStack answers `na` to all but its security protocol and yamux) and PeerStack dials it: `p2p ping`, `p2p identify`, and `p2p send --echo` of
1 MiB on an echo protocol py-libp2p serves. Then PeerStack listens and py-libp2p dials it:
connect, ping (py-libp2p's PingService), identify (its parser), and 1 MiB echoed by PeerStack.
Prints one JSON object with what each step saw.
"""
import json
import os
import subprocess
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.security.tls.transport import PROTOCOL_ID as TLS, TLSTransport
from libp2p.host.ping import ID as PING, PingService, handle_ping
from libp2p.identity.identify.identify import ID as IDENTIFY, parse_identify_response
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.peerinfo import info_from_p2p_addr

ECHO = "/x/peerstack-echo"
SECURITY = sys.argv[3] if len(sys.argv) > 3 else "noise"


async def echo_handler(stream):
    try:
        while True:
            data = await read_some(stream, 65536)
            if not data:
                break
            await stream.write(data)
    finally:
        await stream.close()


def peerstack_json(peerstack, *arguments):
    run = subprocess.run([peerstack, "p2p", *arguments, "--json", "--security", SECURITY],
                         capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        return {"error": run.stderr.strip()[-2000:]}
    return json.loads(run.stdout)


async def read_some(stream, count):
    """Up to `count` bytes; b"" at the end (py-libp2p raises StreamEOF there)."""
    try:
        return await stream.read(count)
    except StreamEOF:
        return b""


async def read_exactly(stream, count):
    data = b""
    while len(data) < count:
        chunk = await read_some(stream, count - len(data))
        if not chunk:
            break
        data += chunk
    return data


async def main():
    work, peerstack = os.path.abspath(sys.argv[1]), sys.argv[2]
    result = {}
    if SECURITY == "tls":
        key_pair = create_new_key_pair()
        host = new_host(key_pair=key_pair, sec_opt={TLS: TLSTransport(key_pair)})
    else:
        host = new_host()
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        host.set_stream_handler(ECHO, echo_handler)
        host.set_stream_handler(PING, handle_ping)
        address = str(host.get_addrs()[0])
        if "/p2p/" not in address:
            address += "/p2p/" + host.get_id().to_base58()
        result["py"] = {"id": host.get_id().to_base58(), "address": address}
        identity = os.path.join(work, "dialer.key")

        def peerstack_dials():
            return {
                "ping": peerstack_json(peerstack, "ping", address, "--identity", identity),
                "identify": peerstack_json(peerstack, "identify", address, "--identity", identity),
                "echo": peerstack_json(peerstack, "send", address, "--protocol", ECHO, "--bytes", "1M",
                                       "--echo", "--identity", identity),
            }
        result.update(await trio.to_thread.run_sync(peerstack_dials))

        # py-libp2p dials PeerStack.
        listener = subprocess.Popen(
            [peerstack, "p2p", "listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--identity",
             os.path.join(work, "listener.key"), "--echo", ECHO, "--security", SECURITY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = await trio.to_thread.run_sync(listener.stdout.readline)
            target = line.strip()[len("listening on "):]
            dialled = {"address": target}
            info = info_from_p2p_addr(multiaddr.Multiaddr(target))
            with trio.fail_after(30):
                await host.connect(info)
                dialled["connected"] = True
                rtts = await PingService(host).ping(info.peer_id, 3)
                dialled["pings"] = len(rtts)
                stream = await host.new_stream(info.peer_id, [IDENTIFY])
                response = b""
                while True:
                    chunk = await read_some(stream, 65536)
                    if not chunk:
                        break
                    response += chunk
                # A varint-length-prefixed message.
                length, shift, offset = 0, 0, 0
                while True:
                    byte = response[offset]
                    length |= (byte & 0x7F) << shift
                    offset += 1
                    shift += 7
                    if byte < 0x80:
                        break
                identify = parse_identify_response(response[offset:offset + length])
                dialled["agent"] = identify.agent_version
                dialled["protocols"] = list(identify.protocols)
                stream = await host.new_stream(info.peer_id, [ECHO])
                payload = os.urandom(1 << 20)

                async def send():
                    await stream.write(payload)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send)
                    echoed = await read_exactly(stream, len(payload))
                dialled["echo"] = echoed == payload
                dialled["echoBytes"] = len(echoed)
                await stream.close()
        except Exception as error:  # noqa: BLE001
            dialled["error"] = f"{type(error).__name__}: {error}"
        finally:
            listener.kill()
            listener.wait()
        result["dialled"] = dialled
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


trio.run(main)
