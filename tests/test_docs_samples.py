"""Every Python sample of the user docs (tests/docs/micropython-client-sdk.txt, a copy of the
seed doc) runs unchanged through ``python -m thingsboard_sdk run`` against a dev server: the
runner's ``--server``/``--token`` replace the samples' placeholder host, port and token, and
``network``/``mip`` come from its stand-ins. Each test checks what the server stored or what
the device printed or replied.

The doc renders each code block as its line numbers 1..N followed by the N code lines; that is
how samples are found. Fragments that use ``client`` get one created (with placeholders) first.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from test_runner import interrupt, server_args, spawn_runner

DOC = Path(__file__).parent / "docs" / "micropython-client-sdk.txt"


def extract_samples(text: str) -> list[str]:
    lines = text.split("\n")
    samples, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "1":
            j, n = i, 0
            while j < len(lines) and lines[j].strip() == str(n + 1):
                n += 1
                j += 1
            while j < len(lines) and not lines[j].strip():
                j += 1  # one block has a blank line between its numbers and its code
            samples.append(textwrap.dedent("\n".join(lines[j : j + n])).strip("\n") + "\n")
            i = j + n
            continue
        i += 1
    return samples


SAMPLES = extract_samples(DOC.read_text())


def safe_check_msg_source() -> str:
    """The docs' own ``safe_check_msg`` (from the Concepts example) for the main-loop sample."""
    concepts = next(s for s in SAMPLES if "def safe_check_msg" in s)
    m = re.search(r"^def safe_check_msg\(\):\n(?:(?:    .*)?\n)+", concepts, re.M)
    assert m, "safe_check_msg not found in the Concepts sample"
    return m.group(0)


@dataclass
class Spec:
    marker: str  # a line that identifies the sample, checked so a doc change is noticed
    client: bool = True  # create ``client`` before the sample
    connect: bool = True  # and connect it
    prelude: str = ""
    pump: bool = False  # after SAMPLE-READY, process one incoming message
    action: Callable[[Any, str], Any] | None = None  # the server's part, after SAMPLE-READY
    setup: Callable[[Any], None] | None = None  # before the script starts
    check: Callable[[Any, str, str, Any], None] | None = None  # (server, device, out, action)
    complete: str = ""  # appended to a sample the docs leave unfinished
    interrupt: bool = False  # loops forever: Ctrl-C once the device is connected
    expect_rc: int = 0
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


def stored_attributes(expected: dict) -> Callable[[Any, str, str, Any], None]:
    def check(server: Any, device: str, out: str, _: Any) -> None:
        assert server.client_attributes(device) == expected

    return check


def check_telemetry(server: Any, device: str, out: str, _: Any) -> None:
    points = {(p.ts, p.key, p.value) for p in server.telemetry(device)}
    assert {(1451649600000, "temperature", 42.2), (1451649600000, "humidity", 71)} <= points
    assert {(1451649601000, "temperature", 42.3), (1451649601000, "humidity", 72)} <= points
    keys = [
        (p.key, p.value)
        for p in server.telemetry(device)
        if p.ts < 1451649600000 or p.ts > 1451649601000
    ]
    assert sorted(keys) == [("humidity", 60), ("temperature", 25.5)]


def check_claims(server: Any, device: str, out: str, _: Any) -> None:
    claims = [(c.secret_key, c.duration_ms) for c in server.claims(device)]
    assert claims == [("my_claim_code", 86400000), ("my_claim_code", 60000)]


def check_rpc_print(server: Any, device: str, out: str, call: Any) -> None:
    expected = "Received RPC request with ID: %s and body: %r"
    assert f"{expected} {call.id} {{'method': 'm', 'params': {{}}}}" in out, out


def rpc_reply_is(reply: Any) -> Callable[[Any, str, str, Any], None]:
    def check(server: Any, device: str, out: str, call: Any) -> None:
        assert call.wait(10) == reply

    return check


def check_provisioned(server: Any, device: str, out: str, _: Any) -> None:
    [new] = server.provisioned_devices()
    assert new.profile_key == "my_provision_key"
    creds = {
        "credentialsValue": new.credentials["token"],
        "credentialsType": "ACCESS_TOKEN",
        "status": "SUCCESS",
    }
    assert "VAR provisioned_credentials " + repr(creds) in out, out


def check_connected_then_disconnected(server: Any, device: str, out: str, _: Any) -> None:
    kinds = [e.kind for e in server.connection_events(device)]
    assert kinds == ["connected", "disconnected"], kinds


def check_no_telemetry(server: Any, device: str, out: str, _: Any) -> None:
    assert server.telemetry(device) == []
    check_connected_then_disconnected(server, device, out, None)


MIP_NOOP = "[mip] mip.install('github:thingsboard/thingsboard-micropython-client-sdk'): nothing"

SPECS: list[Spec] = [
    Spec("mip.install('github:thingsboard", client=False, stderr=[MIP_NOOP]),
    Spec(
        'print("thingsboard-micropython-client-sdk package already installed.")',
        client=False,
        stdout=["thingsboard-micropython-client-sdk package already installed."],
    ),
    Spec(
        "result = client.connect(timeout=20)",
        connect=False,
        stdout=["VAR result 0"],
        check=check_connected_then_disconnected,
    ),
    Spec(
        "# some tasks with ThingsBoard\n\nclient.disconnect()",
        connect=False,
        stdout=["VAR connected False"],
        check=check_connected_then_disconnected,
    ),
    Spec(
        "client.send_attributes(attributes)",
        check=stored_attributes({"sensorModel": "DHT-22", "attribute_2": "value"}),
    ),
    Spec("from time import time", check=check_telemetry),
    Spec(
        'client.request_attributes(client_keys=["atr1", "atr2"]',
        prelude='client.send_attributes({"atr1": "v", "atr2": 2}).wait(10)',
        stdout=["{'client': {'atr1': 'v', 'atr2': 2}}"],
    ),
    Spec('client.claim_device("my_claim_code", duration_ms=60000)', check=check_claims),
    Spec(
        'sub_id = client.subscribe_to_attribute("frequency", callback)\n',
        pump=True,
        action=lambda s, d: s.set_shared_attributes(d, {"frequency": 5}),
        stdout=["Received data: %r {'frequency': 5}", "VAR sub_id 1"],
    ),
    Spec(
        "sub_id = client.subscribe_to_all_attributes(callback)",
        pump=True,
        action=lambda s, d: s.set_shared_attributes(d, {"any": "thing"}),
        stdout=["Received data: %r {'any': 'thing'}", "VAR sub_id 1"],
    ),
    Spec("client.unsubscribe_from_attribute(sub_id)", stdout=["VAR sub_id 1"]),
    Spec(
        'print("Received RPC request with ID: %s and body: %r", request_id, request_body)\n\n'
        "client.set_server_side_rpc_request_handler(handler)",
        pump=True,
        action=lambda s, d: s.start_rpc(d, "m", {}, expiry=10),
        check=check_rpc_print,
    ),
    Spec(
        'client.send_rpc_reply(request_id, {"status": "success"})',
        pump=True,
        action=lambda s, d: s.start_rpc(d, "m", {}, expiry=10),
        check=rpc_reply_is({"status": "success"}),
    ),
    Spec(
        '"my_provision_secret", gateway=True)',
        connect=False,
        stdout=[
            "VAR provision_request "
            + repr(
                {
                    "provisionDeviceKey": "my_provision_key",
                    "provisionDeviceSecret": "my_provision_secret",
                    "gateway": True,
                }
            )
        ],
    ),
    Spec(
        'client.provision("thingsboard.cloud", 1883, provision_request)',
        connect=False,
        setup=lambda s: s.add_provision_profile("my_provision_key", "my_provision_secret"),
        check=check_provisioned,
    ),
    # The Concepts example: Wi-Fi through the network stand-in, then the main loop sends the
    # set literal {"CPU", 12.0}: TypeError (contract section 6) on the first iteration, a
    # traceback at the sample's own line, a hint naming the literal, the client disconnected.
    Spec(
        'wlan.connect("WIFI_SSID", "WIFI_PASSWORD")',
        client=False,
        expect_rc=1,
        stdout=["Connected! Network config:"],
        stderr=["TypeError", "set", 'hint: {"CPU", 12.0} on line', 'write {"CPU": 12.0}'],
        check=check_no_telemetry,
    ),
    # The "Connecting" snippet ends in `while True:` whose body the docs leave out: the test
    # completes it with `pass`, waits until the device is connected, then presses Ctrl-C.
    Spec(
        'client = TBDeviceMqttClient(host="thingsboard.cloud", port=1883',
        client=False,
        complete="    pass\n",
        interrupt=True,
        stdout=["Connected! Network config:"],
        check=check_connected_then_disconnected,
    ),
    Spec(
        'client.send_rpc_reply(request_id, "ok")\n\nclient.set_server_side',
        pump=True,
        action=lambda s, d: s.start_rpc(d, "setLed", {"on": True}, expiry=10),
        check=lambda s, d, o, call: (
            rpc_reply_is("ok")(s, d, o, call),
            check_rpc_line(o, call),
        ),
    ),
    Spec(
        'client.send_telemetry({"CPU", 12.0})\n    time.sleep_ms(50)',
        prelude="import time\n\n\n" + "{safe_check_msg}",
        expect_rc=1,
        stderr=["TypeError", "set", 'hint: {"CPU", 12.0} on line'],
        check=check_no_telemetry,
    ),
    Spec(
        "mip.install('github:thingsboard/thingsboard-micropython-client-sdk')\n",
        client=False,
        stderr=[MIP_NOOP],
    ),
]


def check_rpc_line(out: str, call: Any) -> None:
    assert f"[RPC] id: {call.id} body: {{'method': 'setLed', 'params': {{'on': True}}}}" in out


def test_every_doc_sample_has_a_spec():
    assert len(SAMPLES) == len(SPECS) == 20
    for sample, spec in zip(SAMPLES, SPECS):
        assert spec.marker in sample, (spec.marker, sample)


def build_script(spec: Spec, sample: str) -> str:
    """The sample, after a client made with the docs' placeholders (the runner redirects it)."""
    parts = ["import sys\n"]
    if spec.client:
        parts.append(
            "from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient\n"
            'client = TBDeviceMqttClient("THINGSBOARD_HOST", port=1883, '
            'access_token="ACCESS_TOKEN")\n'
        )
        if spec.connect:
            parts.append(
                "if client.connect() is None:\n"
                "    sys.exit('connect failed: %s' % client.last_error)\n"
            )
    if spec.prelude:
        parts.append(spec.prelude.replace("{safe_check_msg}", safe_check_msg_source()) + "\n")
    parts.append("\n# ---- sample ----\n" + sample + spec.complete + "\n")
    parts.append("# ---- end of sample ----\nprint('SAMPLE-READY', flush=True)\n")
    if spec.pump:
        parts.append("assert client.wait_for_msg(timeout=15), 'no message arrived'\n")
    parts.append(
        "for _name in ('result', 'sub_id', 'provision_request', 'provisioned_credentials'):\n"
        "    if _name in globals():\n"
        "        print('VAR', _name, repr(globals()[_name]), flush=True)\n"
    )
    if spec.client:
        parts.append("client.disconnect()\nprint('VAR connected', client.connected)\n")
    return "".join(parts)


@pytest.mark.parametrize(
    "index", range(len(SPECS)), ids=[f"sample{i:02d}" for i in range(len(SPECS))]
)
def test_doc_sample_runs(index, tb_devserver, run_py):
    spec, sample = SPECS[index], SAMPLES[index]
    device = f"doc-sample-{index:02d}"
    token = tb_devserver.add_device(device)
    if spec.setup:
        spec.setup(tb_devserver)
    script = run_py.workdir / f"sample{index:02d}.py"
    script.write_text(build_script(spec, sample))
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    head: list[str] = []
    acted = None
    if spec.interrupt:
        tb_devserver.wait_for(lambda: tb_devserver.is_connected(device), 30, "the connect")
        rc, out, err = interrupt(run_py, proc)
        assert rc == 130 and "run: interrupted (Ctrl-C)" in err, err
    else:
        if spec.expect_rc == 0:
            head = run_py.read_until(proc, "SAMPLE-READY", timeout=60)
            if spec.action:
                acted = spec.action(tb_devserver, device)
        out, err = run_py.finish(proc, timeout=60)
        rc = proc.returncode
    out = "".join(head) + out
    context = (
        f"\n--- script ---\n{script.read_text()}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    )
    if not spec.interrupt:
        assert rc == spec.expect_rc, context
    for text in spec.stdout:
        assert text in out, f"missing {text!r}" + context
    for text in spec.stderr:
        assert text in err, f"missing {text!r}" + context
    if spec.expect_rc:
        # the traceback points at the sample's own line, not at the runner
        line = next(
            n
            for n, text in enumerate(script.read_text().splitlines(), 1)
            if 'client.send_telemetry({"CPU", 12.0})' in text
        )
        assert f'File "{script}", line {line}, in <module>' in err, context
        assert "_runner" not in err, context
    if spec.check:
        spec.check(tb_devserver, device, out, acted)
