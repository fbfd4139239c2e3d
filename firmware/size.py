#!/usr/bin/env python3
"""Flash use of the firmware ELF: .text and .rodata, and how much of them tb-core accounts for.

Usage: size.py [--net] ELF

--net (the networked firmware): smoltcp and fw-mqtt get rows of their own; the app's own
functions, into which LTO inlined much of every layer, are split again by their DWARF inline
frames (addr2line -i), which gives tb-core's share including its inlined code (the figure
checked then, against the gateway build's own budget: see GATEWAY_BUDGET); and the static RAM
(.data, .bss, their largest objects) is printed. Peak heap and stack use are measured by the
firmware itself and printed at the end of its run.

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
# tb-core + deps, device firmware (the scripted one: no gateway, no pacing).
BUDGET = 48 * 1024
# The networked firmware builds tb-core with its `gateway` feature and calls every gateway
# command: about 4 KiB of gateway code on top of the device's (firmware/README.md, "Numbers
# (--net)"), so it has a budget of its own.
GATEWAY_BUDGET = 50 * 1024
RAM_SECTIONS = (".data", ".bss", ".uninit")


def readelf(*args):
    return subprocess.run(["readelf", *args], check=True, capture_output=True, text=True).stdout


# Source paths of inlined frames -> bucket (for code LTO inlined into the app's functions).
PATH_BUCKETS = [
    ("firmware app", re.compile(r"/firmware/src/")),
    ("fw-mqtt", re.compile(r"/firmware/mqtt/")),
    ("tb-core", re.compile(r"/crates/tb-core/")),
    ("smoltcp", re.compile(r"/(smoltcp|heapless|managed|byteorder|hash32)-[0-9]")),
    (
        "tb-core deps",
        re.compile(
            r"/(serde_json|serde_core|serde|zmij|ryu|itoa|memchr|thiserror|sha2|md-5|mur3|crc|"
            r"crc-catalog|digest|block-buffer|generic-array)-[0-9]"
        ),
    ),
    (
        "runtime",
        re.compile(
            r"/(cortex-m|cortex-m-rt|cortex-m-semihosting|embedded-alloc|"
            r"linked_list_allocator|critical-section)-[0-9]"
        ),
    ),
    ("core/alloc", re.compile(r"/rustlib/src/|/library/(core|alloc)/")),
]


def by_inline_frames(elf, functions):
    """Attributes the bytes of `functions` through their DWARF inline chains.

    With LTO the app's functions absorb the code of everything they call. addr2line -i lists,
    for an address, the inlined frames from innermost to outermost with each frame's source
    file; walking from the outermost, the first frame outside the app's own sources names the
    code that would have been that crate's function had it not been inlined. Every even address
    is asked (Thumb instructions are 2 or 4 bytes), each standing for 2 bytes.
    """
    addrs = [a for start, size in functions for a in range(start, start + size, 2)]
    if not addrs:
        return {}
    out = subprocess.run(
        ["addr2line", "-a", "-i", "-f", "-e", elf],
        input="\n".join(hex(a) for a in addrs),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    counts = {}
    # Output: per address, its line "0x...", then (function, file:line) pairs, innermost first.
    chains = []
    for line in out:
        if re.fullmatch(r"0x[0-9a-f]+", line):
            chains.append([])
        elif chains:
            chains[-1].append(line)
    for chain in chains:
        bucket = "firmware app"
        for path in reversed(chain[1::2]):  # the file:line of each frame, outermost first
            b = next((b for b, rx in PATH_BUCKETS if rx.search(path)), "firmware app")
            if b != "firmware app":
                bucket = b
                break
        counts[bucket] = counts.get(bucket, 0) + 2
    return counts


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
    app_functions = []  # (address, size) of the app's own .text symbols
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
        if bucket == "firmware app" and sec == ".text":
            app_functions.append((int(value, 16) & ~1, size))

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
    budget = GATEWAY_BUDGET if net else BUDGET
    target = f"target <= {budget // 1024} KiB{' with the gateway module' if net else ''}"
    print(
        f"tb-core + deps: {core} B = {core / 1024:.1f} KiB of flash"
        + ("" if net else f" ({target})")
    )
    # Upper bound: also charge tb-core with every byte no symbol names (string literals, its
    # error messages among them) and every unclassified symbol (outlined fragments).
    upper = core + nt + nr + used[("other", ".text")] + used[("other", ".rodata")]
    kb = upper / 1024
    print(f"tb-core + deps, upper bound (plus all unattributed bytes): {upper} B = {kb:.1f} KiB")
    if net:
        inlined = by_inline_frames(elf, app_functions)
        total_app = sum(inlined.values())
        print(
            f"firmware app's {total_app} B of .text by the outermost inlined frame that is not "
            "the app's (DWARF):"
        )
        for b, n in sorted(inlined.items(), key=lambda kv: -kv[1]):
            print(f"  {b:14} {kib(n)}")
        with_inlined = core + inlined.get("tb-core", 0) + inlined.get("tb-core deps", 0)
        print(
            f"tb-core + deps including code inlined into the app: {with_inlined} B = "
            f"{with_inlined / 1024:.1f} KiB ({target})"
        )
        core = with_inlined
        ram = {name: size for name, size in sections.values() if name in RAM_SECTIONS}
        total = sum(ram.values())
        parts = ", ".join(f"{n} {ram[n]} B" for n in RAM_SECTIONS if n in ram)
        print(f"static RAM: {parts}; {total} B = {total / 1024:.1f} KiB of 64 KiB")
        for size, sec, name in sorted(ram_objects, reverse=True)[:8]:
            print(f"  {sec:7} {size:6d} B  {name}")
    if core > budget:
        print(f"size.py: FAIL tb-core + deps is {core} B, over its budget ({target})")
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    net = "--net" in args
    args = [a for a in args if a != "--net"]
    if len(args) != 1:
        sys.exit(__doc__)
    sys.exit(main(args[0], net))
