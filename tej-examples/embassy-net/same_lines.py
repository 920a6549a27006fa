#!/usr/bin/env python3
"""Checks that tej-core's embassy-net doc example (tej-core/src/embedded/
asynch.rs) shows lines of src/lib.rs, which CI compiles for thumbv7em: each
line of the doc example, the commented embassy-net ones uncommented, must be
a line of src/lib.rs. Run from this folder."""
import sys

doc = open("../../tej-core/src/embedded/asynch.rs").read().split("\n")
lib = set(open("src/lib.rs").read().split("\n"))

start = doc.index("//! ```no_run") + 1
end = doc.index("//! ```", start)
missing = []
for line in doc[start:end]:
    line = line.removeprefix("//!").removeprefix(" ")
    if line == "//" or line.startswith("// "):
        line = line[3:]
    if line.strip() and line not in lib:
        missing.append(line)
for line in missing:
    print(f"not in src/lib.rs: {line}", file=sys.stderr)
if missing:
    sys.exit(1)
print(f"the doc example's {end - start} lines are lines of src/lib.rs")
