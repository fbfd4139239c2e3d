"""TLS against a mosquitto TLS listener, with certificates made at test time (openssl CLI);
and secrets never in logs.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import Mosquitto, free_port
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl CLI")

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d,
    )  # fmt: skip


def make_leaf(d: Path, name: str, ca: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
            cwd=d)  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


SERVER_EXT = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
)
CLIENT_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_leaf(d, "server", "ca", "127.0.0.1", SERVER_EXT)
    make_leaf(d, "device", "ca", "device-x509-1", CLIENT_EXT)
    make_leaf(d, "rogue-device", "other-ca", "rogue", CLIENT_EXT)
    # a self-signed server certificate (its own issuer), for tls_verify=False
    openssl(
        "req", "-x509", *EC, "-keyout", "self.key", "-out", "self.crt", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", cwd=d,
    )  # fmt: skip
    return d


class TLSMosquitto(Mosquitto):
    """mosquitto with one TLS listener on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path, pki: Path, *, cert="server", require_cert=False):
        super().__init__(workdir, port=free_port())
        self.pki, self.cert, self.require_cert = pki, cert, require_cert

    def _write_config(self) -> None:
        super()._write_config()
        lines = [
            f"cafile {self.pki / 'ca.crt'}",
            f"certfile {self.pki / (self.cert + '.crt')}",
            f"keyfile {self.pki / (self.cert + '.key')}",
            "tls_version tlsv1.2",
        ]
        if self.require_cert:
            lines += ["require_certificate true", "use_identity_as_username true"]
        text = self.conf.read_text()
        if self.require_cert:
            text = text.replace("allow_anonymous true", "allow_anonymous false")
        # the TLS options belong to the listener: put them right after its line
        first, rest = text.split("\n", 1)
        self.conf.write_text(first + "\n" + "\n".join(lines) + "\n" + rest)


@pytest.fixture
def tls_broker_factory(tmp_path, pki):
    made: list[TLSMosquitto] = []

    def make(**kw) -> TLSMosquitto:
        b = TLSMosquitto(tmp_path / uuid.uuid4().hex[:6], pki, **kw)
        b.workdir.mkdir()
        b.start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def tls_client(b: Mosquitto, **kw) -> TBDeviceMqttClient:
    kw.setdefault("access_token", "tok-tls")
    kw.setdefault("client_id", "dev-tls-" + uuid.uuid4().hex[:8])
    return TBDeviceMqttClient(b.host, b.port, tls=True, reconnect=False, **kw)


def test_right_ca_connects_and_sends(tls_broker_factory, pki):
    b = tls_broker_factory()
    c = tls_client(b, ca_certs=str(pki / "ca.crt"))
    try:
        assert c.connect(timeout=10) == 0, c.last_error
        assert c.send_telemetry({"tls": 1}).wait(5) is True
    finally:
        c.disconnect()


def test_wrong_ca_fails_with_clear_error(tls_broker_factory, pki):
    b = tls_broker_factory()
    c = tls_client(b, ca_certs=str(pki / "other-ca.crt"))
    try:
        assert c.connect(timeout=10) is None
        err = c.last_error or ""
        print(f"\nwrong CA: {err}")
        assert "TLS" in err and "certificate" in err.lower(), err
        assert c.connected is False
    finally:
        c.disconnect()


def test_default_verification_refuses_self_signed_server(tls_broker_factory, pki):
    """Without ca_certs the system roots apply: a self-signed server is refused."""
    b = tls_broker_factory(cert="self")
    c = tls_client(b)
    try:
        assert c.connect(timeout=10) is None
        assert "certificate" in (c.last_error or "").lower(), c.last_error
    finally:
        c.disconnect()


def test_tls_verify_false_connects_to_self_signed_only_when_asked(tls_broker_factory, pki):
    b = tls_broker_factory(cert="self")
    c = tls_client(b, tls_verify=False)
    try:
        assert c.connect(timeout=10) == 0, c.last_error
        assert c.send_telemetry({"insecure": 1}).wait(5) is True
    finally:
        c.disconnect()


def test_x509_client_certificate_auth(tls_broker_factory, pki):
    b = tls_broker_factory(require_cert=True)
    c = tls_client(
        b,
        access_token=None,
        ca_certs=str(pki / "ca.crt"),
        cert_file=str(pki / "device.crt"),
        key_file=str(pki / "device.key"),
    )
    try:
        assert c.connect(timeout=10) == 0, c.last_error
        assert c.send_telemetry({"x509": 1}).wait(5) is True
    finally:
        c.disconnect()


@pytest.mark.parametrize("cert", [None, "rogue-device"], ids=["no-cert", "cert-from-other-ca"])
def test_x509_listener_refuses_without_a_valid_client_cert(tls_broker_factory, pki, cert):
    b = tls_broker_factory(require_cert=True)
    kw = {}
    if cert:
        kw = {"cert_file": str(pki / f"{cert}.crt"), "key_file": str(pki / f"{cert}.key")}
    c = tls_client(b, ca_certs=str(pki / "ca.crt"), **kw)
    try:
        assert c.connect(timeout=10) is None
        print(f"\nx509 refused ({cert}): {c.last_error}")
        assert c.last_error
    finally:
        c.disconnect()


def test_missing_key_file_is_a_clear_error(pki):
    with pytest.raises((OSError, ValueError)) as info:
        TBDeviceMqttClient(
            "127.0.0.1",
            1,
            tls=True,
            ca_certs=str(pki / "ca.crt"),
            cert_file=str(pki / "device.crt"),
            key_file=str(pki / "nope.key"),
        )
    assert "nope.key" in str(info.value)


SECRET_LOG_SCRIPT = """
import logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, r):
        records.append(r)
logging.basicConfig(level=1)
logging.getLogger().addHandler(Keep(level=1))
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
TOKEN, PASSWORD = "TOKEN-zq8Xw3SECRET", "PASSWORD-k7Vq2SECRET"
# a good session with a token, one with user name and password, and failing ones
for kw in ({"access_token": TOKEN}, {"username": TOKEN, "password": PASSWORD}):
    c = TBDeviceMqttClient("127.0.0.1", {port}, client_id="dev-secret", **kw)
    assert c.connect(timeout=10) == 0, c.last_error
    c.send_telemetry({"a": 1}).wait(5)
    c.request_attributes(shared_keys=["x"], callback=None, timeout=0.2)
    c.disconnect()
for port in ({dead}, {auth}):
    c = TBDeviceMqttClient("127.0.0.1", port, username=TOKEN, password=PASSWORD,
                           client_id="dev-secret")
    assert c.connect(timeout=5) is None
    assert TOKEN not in (c.last_error or "") and PASSWORD not in (c.last_error or "")
    c.disconnect()
for r in records:
    text = r.getMessage() + repr(r.args) + (str(r.exc_info[1]) if r.exc_info else "")
    print(r.levelno, r.name, text.replace("\\n", " "))
print("RECORDS", len(records))
"""


def test_tokens_and_passwords_never_logged(broker, tmp_path, run_py):
    from test_faults import AuthMosquitto

    auth = AuthMosquitto(tmp_path, {"someone": "else"})
    auth.start()
    try:
        code = (
            SECRET_LOG_SCRIPT.replace("{port}", str(broker.port))
            .replace("{dead}", str(free_port()))
            .replace("{auth}", str(auth.port))
        )
        res = run_py.run(code, timeout=60)
    finally:
        auth.stop()
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    n = int(out.rsplit("RECORDS", 1)[1].split()[0])
    assert n >= 2, out  # at least the two "cannot connect" errors were logged
    assert "SECRET" not in out, [ln for ln in out.splitlines() if "SECRET" in ln]
