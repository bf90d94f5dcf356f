"""What the Python benchmarks share: the release peerstack, and a random payload."""
import os
import subprocess


def release_peerstack(root):
    """Builds the release peerstack in `root` and returns the binary's path."""
    subprocess.run(["swift", "build", "-c", "release", "--product", "peerstack"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip() + "/peerstack"


def random_payload(path, size_mib):
    """`size_mib` MiB of random bytes at `path`."""
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
