#!/usr/bin/env bash
# Remakes the seed corpus from the conformance tests (crates/tb-devserver/tests): each test
# client records the bytes it sent (TB_DEVSERVER_FUZZ_SEEDS, tests/common/mod.rs); every
# recording becomes a `session` seed (steering byte 0: no CONNECT prepended, one read), and
# every PUBLISH payload in them, plus the parser's own lenient forms, a `json` seed (inputs
# above 4 KiB, the size-limit cases, are left out).
#
#   crates/tb-devserver/fuzz/seeds.sh
set -euo pipefail
cd "$(dirname "$0")"
raw=$(mktemp -d)
trap 'rm -rf "$raw" "$raw.log"' EXIT
TB_DEVSERVER_FUZZ_SEEDS=$raw cargo test -q --manifest-path ../Cargo.toml --tests >"$raw.log" 2>&1 || { tail -40 "$raw.log"; exit 1; }
python3 - "$raw" <<'EOF'
import hashlib, pathlib, sys

raw = pathlib.Path(sys.argv[1])
session, jsons = pathlib.Path("corpus/session"), pathlib.Path("corpus/json")
for d in (session, jsons):
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()

def name(data):
    return hashlib.sha1(data).hexdigest()[:16]

def varint(b, i):
    n, shift = 0, 0
    while i < len(b):
        n |= (b[i] & 0x7F) << shift
        i += 1
        if b[i - 1] < 0x80:
            return n, i
        shift += 7
    raise ValueError

count = {"session": 0, "json": 0}
seen = set()
for f in sorted(raw.iterdir()):
    data = f.read_bytes()
    if len(data) > 4096:  # the size-limit cases: slow to fuzz, nothing a small input lacks
        continue
    (session / name(data)).write_bytes(b"\x00" + data)
    count["session"] += 1
    v5, i = False, 0
    try:
        while i < len(data):
            first = data[i]
            size, body = varint(data, i + 1)
            p, i = data[body:body + size], body + size
            if first >> 4 == 1 and len(p) > 6:
                v5 = p[6] == 5
            elif first >> 4 == 3:
                j = 2 + int.from_bytes(p[:2], "big")
                if (first >> 1) & 3:
                    j += 2
                if v5:
                    props, j = varint(p, j)
                    j += props
                payload = p[j:]
                if payload and len(payload) <= 4096 and payload not in seen:
                    seen.add(payload)
                    (jsons / name(payload)).write_bytes(payload)
                    count["json"] += 1
    except (ValueError, IndexError):
        pass
for text in ["{temperature:25}", "{'a':'b' /* c */, # x\n c = hot}", "[1,]", "007", "True",
             "{a:1,b:2,a:3}", "\"\\ud83d\\ude00\"", "{\"v\":1e400,\"w\":-0.0,\"x\":12345678901234567890}",
             "{\"s\":\"\\u0001\",\"n\":null,\"o\":{\"p\":[true,false]}}", ""]:
    data = text.encode()
    if data not in seen:
        seen.add(data)
        (jsons / name(data)).write_bytes(data)
        count["json"] += 1
print(f"seeds: {count['session']} session, {count['json']} json")
EOF
