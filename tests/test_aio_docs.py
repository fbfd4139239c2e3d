"""docs/asyncio.md's complete example: it type-checks under ``mypy --strict`` and runs against
the dev server (telemetry, the attribute request, server and client RPC, a setting push)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "asyncio.md"


def example_source() -> str:
    text = DOC.read_text()
    section = text.split("## A complete example", 1)[1]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "no python block after '## A complete example'"
    return m.group(1)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "thermostat.py"
    path.write_text(example_source())
    return path


def test_example_passes_mypy_strict(example: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=example.parent,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_aio_modules_pass_mypy_strict() -> None:
    src = DOC.parent.parent / "python"
    r = subprocess.run(
        # Only the asyncio modules are held to --strict here: the modules they import are
        # checked as what they are (follow-imports=silent reports nothing inside them).
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent"]
        + [
            "thingsboard_sdk/aio.py",
            "thingsboard_sdk/_aio_loop.py",
            "thingsboard_sdk/_aio_gateway.py",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=src,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.asyncio
async def test_example_runs_against_the_devserver(example: Path, tb_devserver, capsys) -> None:
    spec = importlib.util.spec_from_file_location("thermostat", example)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tb_devserver.add_device("thermostat", "THERMO")
    tb_devserver.set_shared_attributes("thermostat", {"targetTemperature": 23.0})
    tb_devserver.set_client_rpc_reply("getCurrentTime", {"time": 1234})
    loop = asyncio.get_running_loop()
    run = asyncio.ensure_future(
        module.main(tb_devserver.host, tb_devserver.port, "THERMO", seconds=3.0)
    )

    def server_side() -> object:
        tb_devserver.wait_for(lambda: tb_devserver.is_connected("thermostat"), 10)
        tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("thermostat"), 10)
        tb_devserver.set_shared_attributes("thermostat", {"targetTemperature": 25.0})
        return tb_devserver.send_rpc("thermostat", "getState", timeout=10)

    assert await loop.run_in_executor(None, server_side) == {"ok": True}
    await asyncio.wait_for(run, 30)
    out = capsys.readouterr().out
    assert "server time {'time': 1234}" in out
    assert "new target 25.0" in out
    assert "temperature" in tb_devserver.latest_telemetry("thermostat")
    # The example has disconnected; the server notes it once the DISCONNECT is read.
    tb_devserver.wait_for(lambda: not tb_devserver.is_connected("thermostat"), 10)
