"""Every Python sample of the user docs (tests/docs/micropython-client-sdk.txt, a copy of the
seed doc) runs against mosquitto with host, port and token substituted and loops bounded.

The doc renders each code block as its line numbers 1..N followed by the N code lines; that is
how samples are found. Samples that need ``network``/``mip`` wait for the script runner.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

DOC = Path(__file__).parent / "docs" / "micropython-client-sdk.txt"
RUNNER_SKIP = "imports network/mip: runs through the MicroPython script runner (separate issue)"


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
    action: Callable[[Any], None] | None = None  # the peer's part, after SAMPLE-READY
    peer_setup: Callable[[Any], None] | None = None
    expect_rc: int = 0
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    skip: str = ""


PROV_SUCCESS = {
    "credentialsValue": "new-token",
    "credentialsType": "ACCESS_TOKEN",
    "status": "SUCCESS",
}

SPECS: list[Spec] = [
    Spec("mip.install('github:thingsboard", skip=RUNNER_SKIP),
    Spec(
        'print("thingsboard-micropython-client-sdk package already installed.")',
        client=False,
        stdout=["thingsboard-micropython-client-sdk package already installed."],
    ),
    Spec("result = client.connect(timeout=20)", connect=False, stdout=["VAR result 0"]),
    Spec(
        "# some tasks with ThingsBoard\n\nclient.disconnect()",
        connect=False,
        stdout=["VAR connected False"],
    ),
    Spec(
        "client.send_attributes(attributes)",
        published=[("v1/devices/me/attributes", b'{"sensorModel":"DHT-22","attribute_2":"value"}')],
    ),
    Spec(
        "from time import time",
        published=[
            ("v1/devices/me/telemetry", b'{"temperature":25.5,"humidity":60}'),
            (
                "v1/devices/me/telemetry",
                b'[{"ts":1451649600000,"values":{"temperature":42.2,"humidity":71}},'
                b'{"ts":1451649601000,"values":{"temperature":42.3,"humidity":72}}]',
            ),
        ],
    ),
    Spec(
        'client.request_attributes(client_keys=["atr1", "atr2"]',
        peer_setup=lambda p: p.answer_attribute_requests({"client": {"atr1": "v", "atr2": 2}}),
        stdout=["{'client': {'atr1': 'v', 'atr2': 2}}"],
        published=[("v1/devices/me/attributes/request/1", b'{"clientKeys":"atr1,atr2"}')],
    ),
    Spec(
        'client.claim_device("my_claim_code", duration_ms=60000)',
        published=[
            ("v1/devices/me/claim", b'{"secretKey":"my_claim_code"}'),
            ("v1/devices/me/claim", b'{"secretKey":"my_claim_code","durationMs":60000}'),
        ],
    ),
    Spec(
        'sub_id = client.subscribe_to_attribute("frequency", callback)\n',
        pump=True,
        action=lambda p: p.push_attributes({"frequency": 5}),
        stdout=["Received data: %r {'frequency': 5}", "VAR sub_id 1"],
    ),
    Spec(
        "sub_id = client.subscribe_to_all_attributes(callback)",
        pump=True,
        action=lambda p: p.push_attributes({"any": "thing"}),
        stdout=["Received data: %r {'any': 'thing'}", "VAR sub_id 1"],
    ),
    Spec("client.unsubscribe_from_attribute(sub_id)", stdout=["VAR sub_id 1"]),
    Spec(
        'print("Received RPC request with ID: %s and body: %r", request_id, request_body)\n\n'
        "client.set_server_side_rpc_request_handler(handler)",
        pump=True,
        action=lambda p: p.server_rpc(4, "m", {}),
        stdout=["Received RPC request with ID: %s and body: %r 4 {'method': 'm', 'params': {}}"],
    ),
    Spec(
        'client.send_rpc_reply(request_id, {"status": "success"})',
        pump=True,
        action=lambda p: p.server_rpc(6, "m", {}),
        published=[("v1/devices/me/rpc/response/6", b'{"status":"success"}')],
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
        peer_setup=lambda p: p.answer_provision(PROV_SUCCESS),
        stdout=["VAR provisioned_credentials " + repr(PROV_SUCCESS)],
        published=[
            (
                "/provision/request",
                b'{"provisionDeviceKey":"my_provision_key",'
                b'"provisionDeviceSecret":"my_provision_secret"}',
            )
        ],
    ),
    Spec('wlan.connect("WIFI_SSID", "WIFI_PASSWORD")', skip=RUNNER_SKIP),
    Spec('client = TBDeviceMqttClient(host="thingsboard.cloud", port=1883', skip=RUNNER_SKIP),
    Spec(
        'client.send_rpc_reply(request_id, "ok")\n\nclient.set_server_side',
        pump=True,
        action=lambda p: p.server_rpc(8, "setLed", {"on": True}),
        stdout=["[RPC] id: 8 body: {'method': 'setLed', 'params': {'on': True}}"],
        published=[("v1/devices/me/rpc/response/8", b'"ok"')],
    ),
    # The docs' main loop sends the set literal {"CPU", 12.0}: the contract (section 6) says
    # TypeError with a message that names the set, on the first iteration.
    Spec(
        'client.send_telemetry({"CPU", 12.0})\n    time.sleep_ms(50)',
        prelude="import time\n\n\n" + "{safe_check_msg}",
        expect_rc=1,
        stderr=["TypeError", "set"],
    ),
    Spec(
        "mip.install('github:thingsboard/thingsboard-micropython-client-sdk')\n", skip=RUNNER_SKIP
    ),
]


def test_every_doc_sample_has_a_spec():
    assert len(SAMPLES) == len(SPECS) == 20
    for sample, spec in zip(SAMPLES, SPECS):
        assert spec.marker in sample, (spec.marker, sample)
        if spec.skip:
            assert re.search(r"^\s*import (network|mip)\b", sample, re.M), (
                "only samples importing network/mip may be skipped"
            )


def substitute(code: str, host: str, port: int, token: str) -> str:
    code = code.replace('"thingsboard.cloud"', repr(host))
    code = code.replace('"THINGSBOARD_HOST"', repr(host))
    code = code.replace("port=1883", f"port={port}")
    code = code.replace(f"{host!r}, 1883,", f"{host!r}, {port},")
    code = code.replace('"YOUR_ACCESS_TOKEN"', repr(token)).replace('"ACCESS_TOKEN"', repr(token))
    code = re.sub(r"^(\s*)while True:", r"\1for _sample_iteration in range(3):", code, flags=re.M)
    return code


def build_script(spec: Spec, sample: str, host: str, port: int, token: str) -> str:
    parts = ["import sys\n"]
    if spec.client:
        parts.append(
            "from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient\n"
            f"client = TBDeviceMqttClient({host!r}, port={port}, access_token={token!r}, "
            f"client_id={'doc-' + token!r})\n"
        )
        if spec.connect:
            parts.append(
                "if client.connect() is None:\n"
                "    sys.exit('connect failed: %s' % client.last_error)\n"
            )
    if spec.prelude:
        parts.append(spec.prelude.replace("{safe_check_msg}", safe_check_msg_source()) + "\n")
    parts.append("\n# ---- sample ----\n" + substitute(sample, host, port, token) + "\n")
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
def test_doc_sample_runs(index, broker, tb_peer, run_py, token):
    spec, sample = SPECS[index], SAMPLES[index]
    if spec.skip:
        pytest.skip(spec.skip)
    if spec.peer_setup:
        spec.peer_setup(tb_peer)
    mark = tb_peer.mark()
    script = build_script(spec, sample, broker.host, broker.port, token)
    proc = run_py.spawn(script)
    head: list[str] = []
    if spec.expect_rc == 0:
        head = run_py.read_until(proc, "SAMPLE-READY", timeout=60)
        if spec.action:
            spec.action(tb_peer)
    out, err = run_py.finish(proc, timeout=60)
    out = "".join(head) + out
    context = f"\n--- script ---\n{script}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    assert proc.returncode == spec.expect_rc, context
    for text in spec.stdout:
        assert text in out, f"missing {text!r}" + context
    for text in spec.stderr:
        assert text in err, f"missing {text!r}" + context
    for topic, payload in spec.published:
        tb_peer.wait_for(
            lambda m, t=topic, p=payload: m.topic == t and m.payload == p, timeout=10, since=mark
        )
    if spec.expect_rc and "set" in spec.stderr:
        assert not tb_peer.matching("v1/devices/me/telemetry", since=mark)
