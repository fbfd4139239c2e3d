#!/usr/bin/env python3
"""Flash use of the firmware ELF: .text and .rodata, and how much of them tb-core accounts for.

Usage: size.py ELF

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
SECTIONS = (".text", ".rodata")


def readelf(*args):
    return subprocess.run(["readelf", *args], check=True, capture_output=True, text=True).stdout


def main(elf):
    sections = {}  # index -> (name, size)
    for m in re.finditer(
        r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)",
        readelf("-SW", elf),
        re.M,
    ):
        sections[int(m.group(1))] = (m.group(2), int(m.group(3), 16))
    totals = {name: size for name, size in sections.values() if name in SECTIONS}
    used = {(b, s): 0 for b, _ in BUCKETS + [("other", None)] for s in SECTIONS}
    seen = set()
    for line in readelf("-sW", "-C", elf).splitlines():
        parts = line.split(None, 7)
        if len(parts) < 8 or not parts[0].rstrip(":").isdigit() or not parts[6].isdigit():
            continue
        _, value, size, _typ, _bind, _vis, ndx, name = parts
        size = int(size, 16) if size.startswith("0x") else int(size)
        sec = sections.get(int(ndx), ("", 0))[0]
        key = (int(value, 16) & ~1, sec)
        if size == 0 or sec not in SECTIONS or key in seen:
            continue
        seen.add(key)
        bucket = next((b for b, rx in BUCKETS if rx.search(name)), "other")
        used[(bucket, sec)] += size

    def kib(n):
        return f"{n:7d} B {n / 1024:6.1f} KiB"

    print(f"{'':16} {'.text':>18} {'.rodata':>18} {'sum':>18}")
    rows = [b for b, _ in BUCKETS] + ["other"]
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
    return 0 if core <= 48 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
