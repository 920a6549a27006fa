#!/usr/bin/env python3
"""Footprint of a firmware ELF (tej-firmware, tej-firmware-net): sections,
and who takes the .text and the static RAM.

Usage: python3 footprint.py [ELF]   (default: tej-firmware's release build
under ../../target/firmware, where the workspace test and CI build it)

Sections come from `size -A`. For the split of .text, every 2-byte step of
.text is looked up with `addr2line -i` (binutils), which gives the chain of
inlined source locations there, innermost first. The step goes to the first
frame of that chain that belongs to a crate of this project (tej-core,
tej-embedded-example, tej-firmware) or to cortex-m-rt / cortex-m-semihosting:
so core, heapless or nom code inlined into tej-core counts as tej-core's.
Steps whose chain has none of those are out-of-line runtime code that every
part shares (memcpy, core::fmt, 64-bit division). Static RAM (.data, .bss)
is listed by symbol (`nm -S -C`): the buffers are statics of each firmware's main.
"""

import collections
import os
import subprocess
import sys

OWNERS = [
    ("/tej-core/src/", "tej-core (decoder, encoder, embedded-io endpoint, errors' Display)"),
    ("/tej-examples/embedded/src/", "tej-embedded-example (echo)"),
    ("/tej-examples/firmware/src/", "tej-firmware (main, UART0 driver)"),
    ("/tej-examples/firmware-net/src/", "tej-firmware-net (main, LAN9118 driver, socket adapter, service)"),
    ("/smoltcp-", "smoltcp (IPv4, ARP, TCP)"),
    ("/sha2-", "sha2 (SHA-256)"),
    ("/digest-", "sha2 (SHA-256)"),
    ("/block-buffer-", "sha2 (SHA-256)"),
    ("/heapless-", "heapless"),
    ("/cortex-m-rt-", "cortex-m-rt (reset, vector handlers)"),
    ("/cortex-m-semihosting-", "cortex-m-semihosting (printing, exit)"),
    ("/cortex-m-", "cortex-m-semihosting (printing, exit)"),
]
SHARED = "shared runtime: memcpy, core::fmt, 64-bit division"


def sections(elf):
    out = subprocess.run(["size", "-A", elf], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith("."):
            found[fields[0]] = (int(fields[1]), int(fields[2]))
    return found


def owner(chain):
    for path in chain:
        for key, name in OWNERS:
            if key in path:
                return name
    return SHARED


def split_text(elf, start, size):
    addresses = "".join(f"{a:#x}\n" for a in range(start, start + size, 2))
    out = subprocess.run(
        ["addr2line", "-e", elf, "-a", "-i"],
        input=addresses, capture_output=True, text=True, check=True,
    ).stdout
    totals = collections.Counter()
    chain = None
    for line in out.splitlines() + ["0x"]:
        if line.startswith("0x"):
            if chain is not None:
                totals[owner(chain)] += 2
            chain = []
        else:
            chain.append(line)
    return totals


def split_ram(elf):
    """Bytes of each .data and .bss symbol, from `nm -S -C`."""
    out = subprocess.run(["nm", "-S", "-C", "--size-sort", elf], capture_output=True, text=True, check=True).stdout
    totals = collections.Counter()
    for line in out.splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) < 4 or fields[2] not in "bBdD":
            continue
        totals[fields[3]] += int(fields[1], 16)
    return totals


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "../../target/firmware/thumbv7em-none-eabihf/release/tej-firmware")
    elf = sys.argv[1] if len(sys.argv) > 1 else default
    found = sections(elf)
    size = lambda name: found.get(name, (0, 0))[0]
    flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data")
    ram = size(".data") + size(".bss") + size(".uninit")
    print(f"{'section':12} {'bytes':>7}")
    for name in [".vector_table", ".text", ".rodata", ".data", ".bss"]:
        print(f"{name:12} {size(name):7}")
    print(f"{'flash':12} {flash:7}  (.vector_table + .text + .rodata + .data)")
    print(f"{'static RAM':12} {ram:7}  (.data + .bss)")
    text_size = size(".text")
    print(f"\n.text by owner ({text_size} bytes):")
    totals = split_text(elf, found[".text"][1], text_size)
    for name, count in totals.most_common():
        print(f"{count:7}  {name}")
    print(f"\nstatic RAM by symbol ({ram} bytes):")
    for name, count in split_ram(elf).most_common():
        print(f"{count:7}  {name}")


if __name__ == "__main__":
    main()
