#!/usr/bin/env python3
"""Flash use of the firmware ELF: .text and .rodata, and how much of them tb-core accounts for.

Usage: size.py [--net] ELF

--net (the networked firmware): smoltcp and fw-mqtt get rows of their own, and the static
RAM (.data, .bss and their largest objects) is printed too; peak heap and stack use are
measured by the firmware itself and printed at the end of its run.

Reads sections and symbols with `readelf` (target-independent, in binutils) and attributes each
symbol by its demangled name, first match wins:

  firmware app      names containing tb_firmware (the example and its checks)
  tb-core           names containing tb_core (its functions, and generic code instantiated for
                    its types, e.g. VecDeque<tb_core::device::Publish>)
  tb-core deps      serde_json, serde, zmij/ryu, itoa, memchr, thiserror and the checksum crates
  runtime           cortex-m, cortex-m-rt, semihosting, embedded-alloc, critical-section
  core/alloc        core, alloc, compiler_builtins (shared by everything)
  no symbol         bytes no sized symbol covers (mostly merged string literals in .rodata)

With LTO some tb-core code is inlined into its callers, so "tb-core" alone is a lower bound;
"tb-core + deps" is the figure compared with the 48 KiB target.
"""

import re
import subprocess
import sys

BUCKETS = [
    ("firmware app", re.compile(r"tb_firmware")),
    ("tb-core", re.compile(r"tb_core")),
    (
        "tb-core deps",
        re.compile(
            r"serde_json|serde_core|serde::|zmij|ryu|itoa|memchr|thiserror|sha2|md5|mur3|crc32fast|digest|block_buffer"
        ),
    ),
    (
        "runtime",
        re.compile(
            r"cortex_m|embedded_alloc|linked_list_allocator|critical_section|__INTERRUPTS|__RESET_VECTOR|__EXCEPTIONS|Reset|HardFault|DefaultHandler"
        ),
    ),
    (
        "core/alloc",
        re.compile(
            r"^<(char|str|[uif]\d+|usize|isize|\[|\*)|core::|alloc::|compiler_builtins|__rustc::|__aeabi|__udiv|mem(cpy|set|move|cmp)"
        ),
    ),
]
NET_BUCKETS = [
    ("smoltcp", re.compile(r"smoltcp|heapless|managed|byteorder")),
    ("fw-mqtt", re.compile(r"fw_mqtt")),
]
SECTIONS = (".text", ".rodata")
RAM_SECTIONS = (".data", ".bss", ".uninit")


def readelf(*args):
    return subprocess.run(["readelf", *args], check=True, capture_output=True, text=True).stdout


def main(elf, net=False):
    buckets = BUCKETS[:3] + NET_BUCKETS + BUCKETS[3:] if net else BUCKETS
    sections = {}  # index -> (name, size)
    for m in re.finditer(
        r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)",
        readelf("-SW", elf),
        re.M,
    ):
        sections[int(m.group(1))] = (m.group(2), int(m.group(3), 16))
    totals = {name: size for name, size in sections.values() if name in SECTIONS}
    used = {(b, s): 0 for b, _ in buckets + [("other", None)] for s in SECTIONS}
    seen = set()
    ram_objects = []
    for line in readelf("-sW", "-C", elf).splitlines():
        parts = line.split(None, 7)
        if len(parts) < 8 or not parts[0].rstrip(":").isdigit() or not parts[6].isdigit():
            continue
        _, value, size, _typ, _bind, _vis, ndx, name = parts
        size = int(size, 16) if size.startswith("0x") else int(size)
        sec = sections.get(int(ndx), ("", 0))[0]
        key = (int(value, 16) & ~1, sec)
        if size and sec in RAM_SECTIONS and key not in seen:
            seen.add(key)
            ram_objects.append((size, sec, name))
            continue
        if size == 0 or sec not in SECTIONS or key in seen:
            continue
        seen.add(key)
        bucket = next((b for b, rx in buckets if rx.search(name)), "other")
        used[(bucket, sec)] += size

    def kib(n):
        return f"{n:7d} B {n / 1024:6.1f} KiB"

    print(f"{'':16} {'.text':>18} {'.rodata':>18} {'sum':>18}")
    rows = [b for b, _ in buckets] + ["other"]
    for b in rows:
        t, r = used[(b, ".text")], used[(b, ".rodata")]
        print(f"{b:16} {kib(t)} {kib(r)} {kib(t + r)}")
    nt = totals[".text"] - sum(used[(b, ".text")] for b in rows)
    nr = totals[".rodata"] - sum(used[(b, ".rodata")] for b in rows)
    print(f"{'no symbol':16} {kib(nt)} {kib(nr)} {kib(nt + nr)}")
    t, r = totals[".text"], totals[".rodata"]
    print(f"{'whole firmware':16} {kib(t)} {kib(r)} {kib(t + r)}")
    core = sum(used[(b, s)] for b in ("tb-core", "tb-core deps") for s in SECTIONS)
    print(f"tb-core + deps: {core} B = {core / 1024:.1f} KiB of flash (target <= 48 KiB)")
    # Upper bound: also charge tb-core with every byte no symbol names (string literals, its
    # error messages among them) and every unclassified symbol (outlined fragments).
    upper = core + nt + nr + used[("other", ".text")] + used[("other", ".rodata")]
    kb = upper / 1024
    print(f"tb-core + deps, upper bound (plus all unattributed bytes): {upper} B = {kb:.1f} KiB")
    if net:
        ram = {name: size for name, size in sections.values() if name in RAM_SECTIONS}
        total = sum(ram.values())
        parts = ", ".join(f"{n} {ram[n]} B" for n in RAM_SECTIONS if n in ram)
        print(f"static RAM: {parts}; {total} B = {total / 1024:.1f} KiB of 64 KiB")
        for size, sec, name in sorted(ram_objects, reverse=True)[:8]:
            print(f"  {sec:7} {size:6d} B  {name}")
    return 0 if core <= 48 * 1024 else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    net = "--net" in args
    args = [a for a in args if a != "--net"]
    if len(args) != 1:
        sys.exit(__doc__)
    sys.exit(main(args[0], net))
