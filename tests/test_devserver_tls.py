"""The dev server's MQTTS listener (``tls_cert``/``tls_key``/``tls_selfsigned``, ``devserver
--tls-selfsigned``) and X.509 device credentials (spec/thingsboard-mqtt.md 3.3), tried with
our client and with paho-mqtt over real TLS on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import json
import queue
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import paho.mqtt.client as mqtt
import pytest
from conftest import HOST, devserver_cli, stop_cli
from paho.mqtt.enums import CallbackAPIVersion
from thingsboard_sdk.devserver import DevServer, write_self_signed
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

TIMEOUT = 15.0


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, str]:
    return write_self_signed(tmp_path / "certs")


@pytest.fixture
def server(certs: dict[str, str]) -> Iterator[DevServer]:
    with DevServer(tls_cert=certs["server_cert"], tls_key=certs["server_key"]) as s:
        s.add_device("Tok", "TLS_TOKEN")
        s.add_device("Cert", cert_pem=Path(certs["device_cert"]).read_text())
        yield s


def paho_connect(port: int, ca: str, **kw: str) -> tuple[mqtt.Client, queue.Queue]:
    """A paho client over TLS; returns it and a queue that gets the CONNACK reason code."""
    acks: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-tls-{port}-{len(kw)}")
    c.tls_set(ca_certs=ca, certfile=kw.get("certfile"), keyfile=kw.get("keyfile"))
    if "token" in kw:
        c.username_pw_set(kw["token"])
    c.on_connect = lambda _c, _u, _f, rc, _p: acks.put(rc)
    c.connect(HOST, port)
    c.loop_start()
    return c, acks


def test_token_over_tls_with_our_client(server: DevServer, certs: dict[str, str]):
    assert server.tls_port not in (None, server.port)
    client = TBDeviceMqttClient(
        HOST, server.tls_port, access_token="TLS_TOKEN", tls=True, ca_certs=certs["ca_cert"]
    )
    assert client.connect(timeout=TIMEOUT) is not None, client.last_error
    try:
        assert client.send_telemetry({"over": "tls"}).wait(TIMEOUT)
    finally:
        client.disconnect()
    assert server.latest_telemetry("Tok") == {"over": "tls"}


def test_x509_certificate_authenticates_our_client(server: DevServer, certs: dict[str, str]):
    client = TBDeviceMqttClient(
        HOST,
        server.tls_port,
        tls=True,
        ca_certs=certs["ca_cert"],
        cert_file=certs["device_cert"],
        key_file=certs["device_key"],
    )
    assert client.connect(timeout=TIMEOUT) is not None, client.last_error
    try:
        assert client.send_telemetry({"auth": "x509"}).wait(TIMEOUT)
    finally:
        client.disconnect()
    assert server.latest_telemetry("Cert") == {"auth": "x509"}
    server.wait_for(lambda: not server.is_connected("Cert"), TIMEOUT, "the disconnect")
    event = [e for e in server.connection_events("Cert") if e.kind == "connected"][-1]
    assert event.return_code == 0


def test_paho_token_and_certificate_over_tls(server: DevServer, certs: dict[str, str]):
    for kw, device in (
        ({"token": "TLS_TOKEN"}, "Tok"),
        ({"certfile": certs["device_cert"], "keyfile": certs["device_key"]}, "Cert"),
    ):
        c, acks = paho_connect(server.tls_port, certs["ca_cert"], **kw)
        try:
            assert acks.get(timeout=TIMEOUT) == 0
            info = c.publish("v1/devices/me/telemetry", '{"paho":1}', qos=1)
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()
        finally:
            c.disconnect()
            c.loop_stop()
        assert server.latest_telemetry(device) == {"paho": 1}


def test_unknown_certificate_is_not_authorised_even_with_a_valid_token(
    server: DevServer, certs: dict[str, str], tmp_path: Path
):
    """spec 3.3: with a client certificate the username is ignored; an unknown certificate
    gets CONNACK "not authorised" (5)."""
    other = write_self_signed(tmp_path / "other")
    c, acks = paho_connect(
        server.tls_port,
        certs["ca_cert"],
        certfile=other["device_cert"],
        keyfile=other["device_key"],
        token="TLS_TOKEN",
    )
    try:
        assert str(acks.get(timeout=TIMEOUT)) == "Not authorized"  # CONNACK 5 on MQTT 3.1.1
    finally:
        c.disconnect()
        c.loop_stop()
    client = TBDeviceMqttClient(
        HOST,
        server.tls_port,
        access_token="TLS_TOKEN",
        tls=True,
        ca_certs=certs["ca_cert"],
        cert_file=other["device_cert"],
        key_file=other["device_key"],
        reconnect=False,
    )
    assert client.connect(timeout=TIMEOUT) is None
    assert "not auth" in (client.last_error or "").lower(), client.last_error
    refused = [e for e in server.connection_events() if e.kind == "refused"]
    assert refused and all(e.reason == "unknown client certificate" for e in refused)
    assert server.latest_telemetry("Tok") == {}


def dated_certificate(folder: Path, start: str, end: str) -> dict[str, str]:
    """A self-signed device certificate valid from ``start`` to ``end`` (``YYYYMMDDHHMMSSZ``),
    made with the ``openssl`` command (``openssl ca`` is the one that takes dates)."""
    folder.mkdir()
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("01\n")
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
        "serial = serial\ndefault_md = sha256\npolicy = p\nx509_extensions = e\n"
        "[p]\ncommonName = supplied\n[e]\nbasicConstraints = CA:FALSE\n"
    )
    run = functools.partial(subprocess.run, cwd=folder, check=True, capture_output=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem"]
    run(["openssl", "req", "-new", *key, "-out", "req.csr", "-subj", "/CN=dated"])
    ca = ["openssl", "ca", "-batch", "-notext", "-config", "ca.cnf", "-selfsign"]
    dates = ["-startdate", start, "-enddate", end]
    run([*ca, "-keyfile", "key.pem", "-in", "req.csr", "-out", "cert.pem", *dates])
    return {"cert": str(folder / "cert.pem"), "key": str(folder / "key.pem")}


def test_certificate_outside_its_validity_dates_is_not_authorised(
    server: DevServer, certs: dict[str, str], tmp_path: Path
):
    """spec 3.3: an expired (or not yet valid) certificate gets CONNACK "not authorised",
    even when it is registered as a device's X.509 credentials."""
    for name, start, end, why in (
        ("Expired", "20200101000000Z", "20210101000000Z", "expired"),
        ("Early", "20900101000000Z", "20910101000000Z", "not valid before"),
    ):
        dated = dated_certificate(tmp_path / name, start, end)
        server.add_device(name, cert_pem=Path(dated["cert"]).read_text())
        c, acks = paho_connect(
            server.tls_port, certs["ca_cert"], certfile=dated["cert"], keyfile=dated["key"]
        )
        try:
            assert str(acks.get(timeout=TIMEOUT)) == "Not authorized"
        finally:
            c.disconnect()
            c.loop_stop()
        refused = [e for e in server.connection_events() if e.kind == "refused"]
        assert refused and why in refused[-1].reason, refused
        assert not server.is_connected(name)
    # The registered, valid one still connects.
    test_x509_certificate_authenticates_our_client(server, certs)


def test_x509_credentials_id_is_thingsboards_sha3_hash(server: DevServer, certs: dict[str, str]):
    """ThingsBoard shows X.509 credentials with ``credentialsId`` = SHA3-256 (hex) of the
    certificate's PEM body and ``credentialsValue`` = that body."""
    pem = Path(certs["device_cert"]).read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))

    def call(path: str, body: Optional[dict] = None, token: str = "") -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(server.url.rstrip("/") + path, data, headers)
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return json.loads(r.read())

    login = {"username": "tenant@thingsboard.org", "password": "tenant"}
    token = call("/api/auth/login", login)["token"]
    dev_id = call("/api/tenant/devices?deviceName=Cert", token=token)["id"]["id"]
    creds = call(f"/api/device/{dev_id}/credentials", token=token)
    assert creds["credentialsType"] == "X509_CERTIFICATE"
    assert creds["credentialsId"] == hashlib.sha3_256(body.encode()).hexdigest()
    assert creds["credentialsValue"] == body


def test_client_refuses_a_server_it_does_not_trust(server: DevServer, tmp_path: Path):
    other = write_self_signed(tmp_path / "other")
    client = TBDeviceMqttClient(
        HOST,
        server.tls_port,
        access_token="TLS_TOKEN",
        tls=True,
        ca_certs=other["ca_cert"],
        reconnect=False,
    )
    assert client.connect(timeout=TIMEOUT) is None
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-untrusted")
    c.tls_set(ca_certs=other["ca_cert"])
    with pytest.raises(ssl.SSLError):
        c.connect(HOST, server.tls_port)


def test_plain_bytes_on_the_tls_port_do_not_disturb_it(server: DevServer, certs: dict[str, str]):
    import socket

    with socket.create_connection((HOST, server.tls_port), timeout=TIMEOUT) as s:
        s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # a plain CONNECT
        reply = s.recv(100)
        assert not reply.startswith(b"\x20"), reply  # a TLS alert or a close, never a CONNACK
    test_token_over_tls_with_our_client(server, certs)


def test_bad_tls_options_are_clear_errors(tmp_path: Path, certs: dict[str, str]):
    with pytest.raises(ValueError, match="both a certificate and a key"):
        DevServer(tls_cert=certs["server_cert"])
    with pytest.raises(ValueError, match=r"TLS certificate .*missing\.pem"):
        DevServer(tls_cert=tmp_path / "missing.pem", tls_key=certs["server_key"])
    with pytest.raises(ValueError, match="does it match the certificate"):
        DevServer(tls_cert=certs["server_cert"], tls_key=certs["device_key"])
    with DevServer() as plain:
        assert plain.tls_port is None
        with pytest.raises(ValueError, match="X.509 certificate must not be empty"):
            plain.add_device("Empty", cert_pem="-----BEGIN CERTIFICATE-----\n")
        with pytest.raises(ValueError, match="one of token, cert_pem"):
            plain.add_device("Both", "T", cert_pem=Path(certs["device_cert"]).read_text())


def test_cli_tls_selfsigned_prints_how_to_connect(tmp_path: Path):
    folder = tmp_path / "tls"
    args = ["--port", "0", "--tls-port", "0", "--tls-selfsigned", str(folder), "--quiet"]
    with devserver_cli(*args, cwd=tmp_path) as (proc, lines):
        text = "".join(lines)
        tls_port = next(
            int(line.rsplit(":", 1)[1]) for line in lines if "MQTTS (TLS) listening on" in line
        )
        assert f"--cafile {folder / 'ca.pem'}" in text
        assert "device 'X509 Device': X.509 certificate" in text
        client = TBDeviceMqttClient(
            HOST,
            tls_port,
            tls=True,
            ca_certs=str(folder / "ca.pem"),
            cert_file=str(folder / "device.pem"),
            key_file=str(folder / "device-key.pem"),
        )
        assert client.connect(timeout=TIMEOUT) is not None, client.last_error
        assert client.send_telemetry({"cli": True}).wait(TIMEOUT)
        client.disconnect()
        stop_cli(proc)
