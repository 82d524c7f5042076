#!/usr/bin/env python3
"""Seeds every fuzz target's corpus with the golden frames of
crates/packet/tests/fixtures: whole frames for the frame-level targets, and
the bytes from each common header offset for the per-header targets."""
import os, struct, sys, glob, hashlib

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "..", "crates", "packet", "tests", "fixtures")
targets = [os.path.splitext(f)[0] for f in os.listdir(os.path.join(here, "fuzz_targets"))]

def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl

for t in targets:
    d = os.path.join(here, "corpus", t)
    os.makedirs(d, exist_ok=True)
    for pcap in glob.glob(os.path.join(fixtures, "*.pcap")):
        for fr in frames(pcap):
            cuts = [0] if t in ("frame", "ethernet", "frame_key") else [14, 18, 22, 34, 38, 42, 50, 54, 58, 62, 70, 76, 84]
            for c in cuts:
                b = fr[c:]
                if t == "frame_key":
                    # The target reads which byte to change, and by how
                    # much, from the last two bytes.
                    b = b + bytes([len(b) % 48, 1])
                if b:
                    name = hashlib.sha1(b).hexdigest()
                    with open(os.path.join(d, name), "wb") as f:
                        f.write(b)
