"""docs/testing.md's example (a board script and its pytest file) runs and passes, in a
child pytest that gets the fixtures from the installed plugin only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def files_in_doc() -> dict[str, str]:
    """The doc's code blocks that start with ``# NAME.py``, by name."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    named = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):
            named[first[2:]] = block
    return named


def test_the_documented_example_passes(tmp_path):
    files = files_in_doc()
    assert set(files) == {"thermostat.py", "test_thermostat.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_thermostat.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def test_wait_for_failure_shows_what_the_server_stored(tb_devserver, tb_client):
    tb_client.send_telemetry({"temperature": 21.0}).wait(10)
    tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("tb-client"))
    try:
        tb_devserver.wait_for(
            lambda: tb_devserver.latest_telemetry("tb-client").get("temperature") == 99, 0.5
        )
    except TimeoutError as exc:
        text = str(exc)
    else:
        raise AssertionError("wait_for did not time out")
    assert 'lambda: tb_devserver.latest_telemetry("tb-client").get("temperature") == 99' in text
    assert "(last value False)" in text
    assert "device 'tb-client' (connected):" in text
    assert "telemetry (latest): {'temperature': 21.0}" in text


def test_script_run_reports_output_and_exit_status(tmp_path, tb_run_script):
    script = tmp_path / "counts.py"
    script.write_text(
        "import sys, machine\n"
        "print('started', sys.argv[1:])\n"
        "adc = machine.ADC(machine.Pin(34))\n"
        "while adc.read_u16() != 1234:\n"
        "    pass\n"
        "print('adc', adc.read_u16())\n"
        "sys.exit(4)\n"
    )
    run = tb_run_script(script, args=["--fast"])
    assert run.wait_for_output("started") == "started ['--fast']"
    assert run.returncode is None
    run.set_adc(34, 1234)
    assert run.wait(30) == 4
    assert run.output.splitlines() == ["started ['--fast']", "adc 1234"]
    try:
        run.set_pin(4, 1)
    except RuntimeError as exc:
        assert "has ended" in str(exc)
    else:
        raise AssertionError("inputs accepted after the end")
