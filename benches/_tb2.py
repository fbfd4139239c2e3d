"""tb-mqtt-client 2.0 as a peer of ``aio.py``: its venv, one counted run, its table.

tb-mqtt-client 2.0 (branch ``develop-2.0`` of thingsboard/thingsboard-python-client-sdk) is not
on PyPI. ``ensure(source, python)`` builds ``benches/.venvs/tb2`` from a git repository (a bare
mirror or a clone: the branch is cloned into ``benches/.venvs/tb2/src``) or from a checkout
directory, and puts the source on ``sys.path`` with a ``.pth`` file (its ``setup.py`` does not
install a usable package). Its dependencies come from PyPI, with gmqtt pinned to 0.7.0: with
gmqtt 0.8.0 its ``connect()`` never returns (it sends no ``getSessionLimits`` request), as found
here. It needs Python >= 3.12 (``python_requires``).

``run_one`` runs ``send_tb2.py`` with ``session_limits.py`` answering its ``getSessionLimits``
on the same mosquitto and ``dp_subscriber.py --per-key`` counting every datapoint that arrived.
Its calls/s is the rate at which its delivery futures resolved; it is not delivered throughput,
because the client merges queued calls and keeps one value per key and millisecond: the table
puts calls/s beside the messages and datapoints that reached the broker.
"""

from __future__ import annotations

import glob
import select
import shutil
import subprocess
import sys
from pathlib import Path

import run as R

BRANCH = "develop-2.0"
DEFAULT_SOURCE = Path("/work/.mirror/thingsboard+thingsboard-python-client-sdk/repo")
REQUIREMENTS = ["gmqtt==0.7.0", "orjson", "uvloop", "setuptools<81"]  # pkg_resources: setuptools
LABEL = "tb-mqtt-client 2.0 (develop-2.0)"
IMPORT_CHECK = (
    "import asyncio\n"
    "async def main():\n"
    "    from tb_mqtt_client.service.device.client import DeviceClient\n"
    "asyncio.run(main())\n"
)


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def find_python(explicit: str | None) -> Path | None:
    """An interpreter >= 3.12: ``explicit``, this one, pyenv's, or ``python3.1x`` on PATH."""
    if explicit:
        return Path(explicit)
    if sys.version_info >= (3, 12):
        return Path(sys.executable)
    found = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.1[2-9]*/bin/python")))
    if found:
        return Path(found[0])
    for name in ("python3.12", "python3.13", "python3.14"):
        exe = shutil.which(name)
        if exe:
            return Path(exe)
    return None


def _source_dir(source: Path, venv: Path) -> tuple[Path | None, str]:
    """The directory holding ``tb_mqtt_client/``, and its commit (or why there is none)."""
    if (source / "tb_mqtt_client").is_dir():
        head = _git("rev-parse", "--short", "HEAD", cwd=source).stdout.strip()
        return source, head or "checkout"
    want = _git("-C", str(source), "rev-parse", "--verify", f"{BRANCH}^{{commit}}")
    if want.returncode != 0:
        want = _git("-C", str(source), "rev-parse", "--verify", f"origin/{BRANCH}^{{commit}}")
    if want.returncode != 0:
        return None, f"no branch {BRANCH} and no tb_mqtt_client/ in {source}"
    commit = want.stdout.strip()
    dest = venv / "src"
    if _git("-C", str(dest), "rev-parse", "HEAD").stdout.strip() != commit:
        shutil.rmtree(dest, ignore_errors=True)
        R.log(f"cloning {source} ({BRANCH}) into {dest}")
        # Design: clone everything, then check out the commit: the branch may exist in
        # ``source`` only as ``origin/develop-2.0`` (a clone), which ``clone -b`` cannot take.
        r = _git("clone", "-q", "--no-hardlinks", "--no-checkout", str(source), str(dest))
        if r.returncode == 0:
            r = _git("-C", str(dest), "checkout", "-q", "--detach", commit)
        if r.returncode != 0:
            return None, f"git clone {source} at {BRANCH} failed: {r.stderr.strip()[-200:]}"
    return dest, commit[:7]


def ensure(source: str | None, python: str | None) -> tuple[Path | None, str, dict]:
    """Build ``benches/.venvs/tb2``.

    Returns:
        ``(python, "", info)`` ready to run ``send_tb2.py``, or ``(None, reason, {})`` when the
        source, an interpreter >= 3.12 or a dependency is missing (the peer is then skipped).
    """
    src = Path(source) if source else DEFAULT_SOURCE
    if not src.exists():
        return None, f"source {src} not found (--tb2-source PATH)", {}
    interp = find_python(python)
    if interp is None or not interp.exists():
        return None, "no Python >= 3.12 found (--tb2-python PATH)", {}
    venv = R.VENVS / "tb2"
    py = venv / "bin" / "python"
    marker = venv / ".deps-installed"
    try:
        if not py.exists():
            R.log(f"creating venv {venv} with {interp}")
            subprocess.run([str(interp), "-m", "venv", str(venv)], check=True, timeout=120)
        if not marker.exists():
            R.log(f"pip install {' '.join(REQUIREMENTS)} into tb2")
            r = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", *REQUIREMENTS],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if r.returncode != 0:
                return None, "pip install failed: " + (r.stderr.strip()[-200:] or "?"), {}
            marker.write_text(" ".join(REQUIREMENTS) + "\n")
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"venv: {e}"[:200], {}
    where, commit = _source_dir(src, venv)
    if where is None:
        return None, commit, {}
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "tb2_source.pth").write_text(str(where.resolve()) + "\n")
    r = subprocess.run(
        [str(py), "-W", "ignore", "-c", IMPORT_CHECK], capture_output=True, text=True, timeout=120
    )
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["?"]
        return None, f"tb_mqtt_client does not import: {lines[-1][:200]}", {}
    info = R.interpreter_info(py, "gmqtt")
    info = {
        "python": info.get("python"),
        "package_version": f"2.0 ({BRANCH} @ {commit})",
        "gmqtt": info.get("package_version"),
    }
    return py, "", info


# ---------------------------------------------------------------- one run


def _start_ready(cmd: list[str], errlog: Path, what: str) -> subprocess.Popen:
    """Start a helper that prints ``READY`` once subscribed; wait up to 10 s for it."""
    errf = open(errlog, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf, bufsize=0
    )
    errf.close()
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else b""
    if line.strip() != b"READY":
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"{what} not ready (got {line!r}); see {errlog}")
    return proc


def run_one(mode: str, py: Path, broker, args, logdir: Path, rep: int) -> dict:
    """One counted run of ``send_tb2.py`` in ``mode`` (``telemetry`` or ``datapoints``)."""
    if mode == "telemetry":
        n, per_call = args.messages, 3
    else:
        n, per_call = args.tb2_dp_messages, args.dp_entries * args.dp_keys
    total = n * per_call
    limits = _start_ready(
        [sys.executable, str(R.HERE / "session_limits.py"), "--port", str(broker.port)],
        logdir / "session_limits.stderr",
        "getSessionLimits responder",
    )
    try:
        sub = _start_ready(
            [
                sys.executable,
                str(R.HERE / "dp_subscriber.py"),
                "--per-key",
                "--port",
                str(broker.port),
                "--datapoints",
                str(total),
                "--timeout",
                str(args.timeout + 45),
            ],
            logdir / "dp_subscriber.stderr",
            "datapoint counter",
        )
        cmd = [
            str(py),
            "-W",
            "ignore::UserWarning",  # its pkg_resources import warns on every start
            str(R.HERE / "send_tb2.py"),
            "--port",
            str(broker.port),
            "--mode",
            mode,
            "--messages",
            str(n),
            "--entries",
            str(args.dp_entries),
            "--keys",
            str(args.dp_keys),
            "--timeout",
            str(args.timeout),
        ]
        out_path = logdir / f"tb2-{mode}-{rep}.stdout"
        err_path = logdir / f"tb2-{mode}-{rep}.stderr"
        broker_cpu0 = broker.cpu_seconds()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=str(R.HERE))
            code, ru, timed_out = R.wait_with_rusage(proc, args.timeout * 2 + 30)
        broker_cpu = broker.cpu_seconds() - broker_cpu0
        sub_result = R.finish_subscriber(sub, 60) or {}
    finally:
        limits_result = R.finish_subscriber(limits, 10) or {}
    result = R.read_result(out_path.read_text(errors="replace")) or {}
    row = {
        "mode": mode,
        "calls": n,
        "datapoints_sent": total,
        "exit_code": code,
        "timed_out": timed_out,
        "process_cpu_s": ru.ru_utime + ru.ru_stime,
        "broker_cpu_s": broker_cpu,
        "sender_result": result,
        "subscriber": sub_result,
        "session_limits": limits_result,
        "client_failed": result.get("failed", n),
        "messages_at_broker": sub_result.get("messages"),
        "datapoints_arrived": sub_result.get("datapoints"),
        "lost_datapoints": sub_result.get("lost"),
        "calls_arrived": sub_result.get("calls_arrived") if mode == "telemetry" else None,
        "cpu_s_per_10k_calls": (ru.ru_utime + ru.ru_stime) * 10_000 / n,
        "cpu_s_per_1m_dp": (ru.ru_utime + ru.ru_stime) * 1e6 / total,
        "stderr_tail": err_path.read_text(errors="replace")[-1500:] if code else "",
    }
    if result.get("elapsed_s"):
        row["calls_per_s"] = n / result["elapsed_s"]
    last = sub_result.get("last_new_at")
    if last and result.get("t0_monotonic") and sub_result.get("datapoints"):
        row["dp_per_s_arrived"] = sub_result["datapoints"] / (last - result["t0_monotonic"])
    return row


def log_row(row: dict) -> None:
    R.log(
        f"  tb2 {row['mode']}: {R.fmt(row.get('calls_per_s'), ',.0f')} calls/s, client-reported "
        f"failures {row['client_failed']}, {R.fmt(row.get('datapoints_arrived'), ',d')} of "
        f"{row['datapoints_sent']:,} datapoints arrived in "
        f"{R.fmt(row.get('messages_at_broker'), ',d')} messages"
        + (f", exit {row['exit_code']}" if row["exit_code"] else "")
    )


def table(rows: list[dict]) -> str:
    """One line per run: the client's account beside what the counter saw arrive."""
    per_dp = any(r["mode"] == "datapoints" for r in rows)
    cpu_head = "sender CPU-s per 1M datapoints sent" if per_dp else "sender CPU-s per 10k calls"
    out = [
        "| suite | run | calls | calls/s (every future resolved) | client-reported failures | "
        "messages at the broker | datapoints sent | datapoints arrived | datapoints lost | "
        f"arrived datapoints/s | calls whose `i` arrived | {cpu_head} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    runs: dict[str, int] = {}
    for r in rows:
        runs[r["mode"]] = runs.get(r["mode"], 0) + 1
        note = " (timed out)" if r.get("timed_out") else ""
        if r.get("exit_code"):
            note += f" (exit {r['exit_code']})"
        out.append(
            f"| {r['mode']}{note} | {runs[r['mode']]} | {r['calls']:,} | "
            f"{R.fmt(r.get('calls_per_s'), ',.0f')} | {R.fmt(r.get('client_failed'), ',d')} | "
            f"{R.fmt(r.get('messages_at_broker'), ',d')} | {r['datapoints_sent']:,} | "
            f"{R.fmt(r.get('datapoints_arrived'), ',d')} | "
            f"{R.fmt(r.get('lost_datapoints'), ',d')} | "
            f"{R.fmt(r.get('dp_per_s_arrived'), ',.0f')} | "
            f"{R.fmt(r.get('calls_arrived'), ',d', '-')} | "
            f"{R.fmt(r.get('cpu_s_per_1m_dp' if per_dp else 'cpu_s_per_10k_calls'), '.3f')} |"
        )
    return "\n".join(out) + "\n"


def telemetry_row(rows: list[dict]) -> str:
    """Its line in the telemetry table: not a msgs/s figure (see ``table``)."""
    tel = sorted(
        (r for r in rows if r["mode"] == "telemetry" and r.get("calls_per_s")),
        key=lambda r: r["calls_per_s"],
    )
    if not tel:
        return f"| {LABEL} | no result: see its table below ||||||"
    m = tel[len(tel) // 2]
    return (
        f"| {LABEL} | n/a: {m['calls_per_s']:,.0f} calls/s, but "
        f"{R.fmt(m.get('datapoints_arrived'), ',d')} of {m['datapoints_sent']:,} datapoints "
        f"arrived (see its table) ||||||"
    )
