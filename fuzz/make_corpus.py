#!/usr/bin/env python3
"""Writes the seed corpus of `decode_stream` from the golden frames and
hand-made edge cases. Each file is `[flags, split seed] + stream`."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tej-core", "tests", "fixtures", "reference-frames.json")
OUT = os.path.join(HERE, "corpus", "decode_stream")


def frame(status=0, version=1, files=(), message=b"", count=None, name_len=None):
    out = bytes([0x80 | status, version]) + struct.pack(">Q", len(files) if count is None else count)
    for name, data in files:
        raw = name.encode()
        out += struct.pack(">H", len(raw) if name_len is None else name_len) + raw
        out += struct.pack(">Q", len(data)) + data
    return out + struct.pack(">Q", len(message)) + message


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    golden = json.load(open(VECTORS))
    for vector in golden:
        wire = bytes.fromhex(vector["wire_hex"])
        seeds[f"golden-{vector['name']}"] = wire
        seeds[f"golden-{vector['name']}-twice"] = wire + wire
        for cut in (1, 2, 10, 12, len(wire) // 2, len(wire) - 1):
            if 0 < cut < len(wire):
                seeds[f"golden-{vector['name']}-cut{cut}"] = wire[:cut]
    seeds["status-bit-clear"] = bytes([0x05, 0x01]) + bytes(16)
    seeds["second-frame-status-bit-clear"] = frame(message=b"ok") + bytes([0x7f, 0x01]) + bytes(16)
    seeds["file-count-max"] = bytes([0x80, 0x01]) + b"\xff" * 8
    seeds["file-size-2-63"] = frame(files=[("a", b"")])[:-8 - 8] + struct.pack(">Q", 1 << 63) + b"xyz"
    seeds["message-size-2-63"] = bytes([0x80, 0x01]) + bytes(8) + struct.pack(">Q", 1 << 63) + b"abc"
    seeds["name-65535"] = bytes([0x80, 0x01]) + struct.pack(">Q", 1) + struct.pack(">H", 65535) + b"n" * 100
    seeds["name-invalid-utf8"] = frame(files=[("ab", b"1")]).replace(b"ab", b"\xc3\x28")
    # The reference writes a non-ASCII name's length in characters.
    seeds["reference-char-count-bug"] = frame(files=[("é.txt", b"data")], name_len=len("é.txt"))
    seeds["many-small-frames"] = b"".join(frame(status=i % 128, message=bytes([i])) for i in range(50))
    for name, stream in seeds.items():
        for flags, seed in ((0, 0), (1, 7)):
            with open(os.path.join(OUT, f"{name}-{flags}{seed}"), "wb") as handle:
                handle.write(bytes([flags, seed]) + stream)


if __name__ == "__main__":
    main()
