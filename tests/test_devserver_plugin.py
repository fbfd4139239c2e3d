"""The pytest plugin shipped with the package: entry point and ``tb_devserver`` fixture."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

from conftest import _child_env

USER_TEST = """
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def test_my_device(tb_devserver):
    token = tb_devserver.add_device("my-device")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="my-device")
    c.username_pw_set(token)
    c.connect(tb_devserver.host, tb_devserver.port)
    c.loop_start()
    try:
        c.publish("v1/devices/me/telemetry", '{"temperature": 25.5}', qos=1).wait_for_publish(10)
        assert tb_devserver.wait_for(
            lambda: tb_devserver.latest_telemetry("my-device").get("temperature"), timeout=10
        ) == 25.5
    finally:
        c.disconnect()
        c.loop_stop()


def test_each_test_gets_a_fresh_server(tb_devserver):
    assert tb_devserver.devices() == []
    assert tb_devserver.running
"""


def test_entry_point_is_registered():
    names = {e.name: e.value for e in importlib.metadata.entry_points(group="pytest11")}
    assert names.get("thingsboard_sdk") == "thingsboard_sdk.pytest_plugin"


def test_fixture_in_this_session(tb_devserver):
    assert tb_devserver.running
    assert tb_devserver.port > 0


def test_users_get_the_fixture_without_configuration(tmp_path):
    """A user's test directory with no conftest: the entry point loads the plugin."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TEST))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
