"""CLI commands that drive a running dev server (or a ThingsBoard) over its REST API.

``rpc``, ``shared``, ``show``, ``follow`` and ``firmware`` talk to ``--url`` (default
``$TB_DEVSERVER_URL`` or ``http://127.0.0.1:8080``) as ``--admin USER:PASSWORD`` (default
ThingsBoard's demo tenant), with the standard library's urllib only. Devices are named, not
given by id. ``follow`` reads the dev server's own event stream (docs/devserver.md), so it
needs the dev server; the others use ThingsBoard's REST API and work against either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Iterator, Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_URL = "http://127.0.0.1:8080"

# ThingsBoard's checksum algorithms (MQTT spec 11.1).
ALGORITHMS = ("MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128")


class RestError(Exception):
    """The server answered with an error status, or could not be reached.

    Attributes:
        status: the HTTP status (0 when the server could not be reached).
        message: ThingsBoard's ``message`` field, the plain-text body, or why.
    """

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


def _message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or f"empty {status} answer"
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


class Rest:
    """A logged-in REST session (the token is kept in memory only, never printed).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8080``.
        user: user name.
        password: password.
        timeout: socket timeout of each call, seconds.
    """

    def __init__(self, url: str, user: str, password: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = ""
        reply = self.call("POST", "/api/auth/login", {"username": user, "password": password})
        if not isinstance(reply, dict) or not reply.get("token"):
            raise RestError(401, "login gave no token")
        self.token = str(reply["token"])

    def raw(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        content_type: str = "application/json",
        timeout: Optional[float] = None,
    ) -> tuple[int, bytes]:
        """One request; returns (status, body) for 2xx.

        Raises:
            RestError: a non-2xx status, or the server cannot be reached.
        """
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["X-Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            raise RestError(exc.code, _message(exc.code, exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RestError(0, f"cannot reach {self.url}: {reason}") from None

    def call(self, method: str, path: str, data: Any = None, **kw: Any) -> Any:
        """A JSON request; returns the decoded JSON answer (None for an empty body).

        Raises:
            RestError: as :meth:`raw`.
        """
        body = None if data is None else json.dumps(data).encode()
        _, raw = self.raw(method, path, body, **kw)
        return json.loads(raw) if raw.strip() else None

    def device(self, name: str) -> dict:
        """The device named ``name``.

        Raises:
            RestError: 404 with a message naming the device when there is none.
        """
        q = urllib.parse.urlencode({"deviceName": name})
        try:
            return self.call("GET", f"/api/tenant/device?{q}")
        except RestError as exc:
            if exc.status == 404:
                raise RestError(404, f"no device named {name!r}") from None
            raise

    def device_id(self, name: str) -> str:
        return str(self.device(name)["id"]["id"])


# ---- arguments ----------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("TB_DEVSERVER_URL", DEFAULT_URL),
        help="the server's base URL (default $TB_DEVSERVER_URL or %(default)s)",
    )
    p.add_argument(
        "--admin",
        default="tenant@thingsboard.org:tenant",
        metavar="USER:PASSWORD",
        help="login (default ThingsBoard's demo tenant, %(default)s)",
    )


def _examples(p: argparse.ArgumentParser, *lines: str) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "examples:\n" + "\n".join(f"  python -m thingsboard_sdk {x}" for x in lines)


def rpc_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("device", help="device name")
    p.add_argument("method", help="RPC method")
    p.add_argument("params", nargs="?", default="null", help="params as JSON (default null)")
    p.add_argument("--oneway", action="store_true", help="one-way: do not wait for a reply")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds the device has to answer (ThingsBoard's minimum is 5; default 10)",
    )
    _examples(
        p,
        "rpc rpc_led setLed true",
        "rpc 'My Device' getTemp '{\"unit\": \"C\"}' --timeout 5",
        "rpc --url http://127.0.0.1:38080 lamp reboot --oneway",
    )


def shared_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("action", choices=("set", "delete"), help="set or delete shared attributes")
    p.add_argument("device", help="device name")
    p.add_argument(
        "items",
        nargs="+",
        metavar="KEY=VALUE|KEY|JSON",
        help="set: KEY=VALUE pairs (VALUE read as JSON if it is, else as text) or one JSON "
        "object; delete: keys",
    )
    _examples(
        p,
        "shared set rpc_led blinkPeriod=500 color=red",
        'shared set lamp \'{"target": 21.5, "mode": "eco"}\'',
        "shared delete lamp mode color",
    )


def show_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("device", nargs="?", help="device name (none: list the devices)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _examples(p, "show", "show rpc_led", "show lamp --json")


def follow_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("device", help="device name")
    p.add_argument(
        "--all",
        action="store_true",
        help="also show attribute changes, RPCs and every MQTT message of the device",
    )
    _examples(p, "follow rpc_led", "follow lamp --all")


def firmware_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("device", help="device name")
    p.add_argument("path", help="the firmware image file")
    p.add_argument("--title", required=True, help="fw_title")
    p.add_argument("--version", required=True, help="fw_version")
    p.add_argument(
        "--algorithm",
        default="SHA256",
        type=str.upper,
        choices=ALGORITHMS,
        help="checksum algorithm (default %(default)s)",
    )
    p.add_argument("--tag", help="fw_tag (optional)")
    _examples(
        p,
        "firmware ota_update build/app.bin --title app --version 1.1",
        "firmware lamp lamp.bin --title lamp --version 2.0 --algorithm CRC32",
    )


# ---- commands -----------------------------------------------------------------------------------


def _session(args: argparse.Namespace) -> Rest:
    user, sep, password = args.admin.partition(":")
    if not sep or not user or not password:
        raise RestError(0, f"--admin must be USER:PASSWORD, got {args.admin!r}")
    return Rest(args.url, user, password)


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        return body(_session(args))
    except RestError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if exc.status == 0 and args.url == DEFAULT_URL:
            print(
                "hint: is a dev server running? start one with `python -m thingsboard_sdk "
                "devserver` or `run SCRIPT.py --devserver`; pass --url if it printed another",
                file=sys.stderr,
                flush=True,
            )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RestError(0, f"{what} is not JSON ({exc}): {text!r}") from None


def cmd_rpc(args: argparse.Namespace) -> int:
    """Sends an RPC and prints the device's reply (two-way) or that it was delivered."""

    def body(rest: Rest) -> int:
        params = _json_arg(args.params, "params")
        dev = rest.device_id(args.device)
        kind = "oneway" if args.oneway else "twoway"
        timeout_ms = int(args.timeout * 1000)
        req = {"method": args.method, "params": params, "timeout": timeout_ms}
        try:
            status, raw = rest.raw(
                "POST",
                f"/api/rpc/{kind}/{dev}",
                json.dumps(req).encode(),
                timeout=max(args.timeout, 5.0) + 30,
            )
        except RestError as exc:
            if exc.status == 504:
                raise RestError(
                    504,
                    f"no answer from {args.device!r} in time (offline, not subscribed to RPC, "
                    "or the script did not reply)",
                ) from None
            raise
        if args.oneway:
            print(f"sent {args.method} to {args.device!r}", flush=True)
        elif raw.strip():
            print(raw.decode("utf-8", "replace"), flush=True)
        else:
            print("(empty reply)", flush=True)
        return EXIT_OK

    return _run(args, body)


def _parse_items(items: list[str]) -> dict:
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        data = _json_arg(items[0], "the attributes")
        if not isinstance(data, dict):
            raise RestError(0, "the attributes must be a JSON object")
        return data
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RestError(0, f"{item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def cmd_shared(args: argparse.Namespace) -> int:
    """Sets or deletes shared attributes; the device gets them over MQTT if subscribed."""

    def body(rest: Rest) -> int:
        dev = rest.device_id(args.device)
        if args.action == "set":
            data = _parse_items(args.items)
            rest.call("POST", f"/api/plugins/telemetry/DEVICE/{dev}/SHARED_SCOPE", data)
            print(f"shared attributes of {args.device!r} set: {json.dumps(data)}", flush=True)
        else:
            q = urllib.parse.urlencode({"keys": ",".join(args.items)})
            rest.call("DELETE", f"/api/plugins/telemetry/DEVICE/{dev}/SHARED_SCOPE?{q}")
            print(f"shared attributes of {args.device!r} deleted: {args.items}", flush=True)
        return EXIT_OK

    return _run(args, body)


def _when(ms: int) -> str:
    if not ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def cmd_show(args: argparse.Namespace) -> int:
    """Prints the devices, or one device's state, latest telemetry and attributes."""

    def body(rest: Rest) -> int:
        if not args.device:
            page = rest.call(
                "GET", "/api/tenant/deviceInfos?pageSize=1000&page=0&sortProperty=name"
            )
            if args.json:
                print(json.dumps(page["data"], indent=2), flush=True)
                return EXIT_OK
            for d in page["data"]:
                state = "online " if d.get("active") else "offline"
                last = _when(int(d.get("lastActivityTime") or 0))
                print(f"{state}  {d['name']}  (last activity {last})", flush=True)
            if not page["data"]:
                print("no devices", flush=True)
            return EXIT_OK
        dev = rest.device_id(args.device)
        base = f"/api/plugins/telemetry/DEVICE/{dev}"
        latest = rest.call("GET", f"{base}/values/timeseries?useStrictDataTypes=true")
        scopes = {
            s: rest.call("GET", f"{base}/values/attributes/{s}")
            for s in ("CLIENT_SCOPE", "SHARED_SCOPE", "SERVER_SCOPE")
        }
        if args.json:
            out = {"device": args.device, "id": dev, "telemetry": latest, "attributes": scopes}
            print(json.dumps(out, indent=2), flush=True)
            return EXIT_OK
        print(f"device {args.device!r} ({dev})", flush=True)
        print("latest telemetry:", flush=True)
        for key, points in sorted(latest.items()):
            p = points[0]
            print(f"  {key} = {json.dumps(p['value'])}  ({_when(p['ts'])})", flush=True)
        if not latest:
            print("  (none)", flush=True)
        for scope, attrs in scopes.items():
            print(f"{scope.split('_')[0].lower()} attributes:", flush=True)
            for a in attrs:
                print(f"  {a['key']} = {json.dumps(a['value'])}", flush=True)
            if not attrs:
                print("  (none)", flush=True)
        return EXIT_OK

    return _run(args, body)


def _events(rest: Rest, device_id: str) -> Iterator[dict]:
    """The dev server's event stream for one device, decoded; ends when the server stops."""
    q = urllib.parse.urlencode({"token": rest.token, "deviceId": device_id})
    req = urllib.request.Request(
        f"{rest.url}/api/devserver/events?{q}", headers={"Accept": "text/event-stream"}
    )
    try:
        # No read timeout: the server pings every 15 s; Ctrl-C ends the wait.
        resp = urllib.request.urlopen(req)
    except urllib.error.HTTPError as exc:
        raise RestError(exc.code, _message(exc.code, exc.read())) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RestError(0, f"cannot reach {rest.url}: {getattr(exc, 'reason', exc)}") from None
    with resp:
        for line in resp:
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("data:"):
                try:
                    yield json.loads(text[5:].strip())
                except ValueError:
                    continue


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def cmd_follow(args: argparse.Namespace) -> int:
    """Prints a device's telemetry as it arrives (Ctrl-C stops)."""

    def body(rest: Rest) -> int:
        dev = rest.device_id(args.device)
        print(f"following {args.device!r} (Ctrl-C stops)", flush=True)
        for ev in _events(rest, dev):
            kind = ev.get("type")
            if kind == "telemetry":
                values = " ".join(f"{k}={json.dumps(v)}" for k, v in ev["values"].items())
                print(f"{_clock(ev['ts'])} {values}", flush=True)
            elif kind == "device" and ev["device"]["id"]["id"] == dev:
                state = "online" if ev["device"].get("active") else "offline"
                if args.all or state == "offline":
                    print(f"{_clock(int(time.time() * 1000))} ({state})", flush=True)
            elif kind == "deviceDeleted" and ev.get("id") == dev:
                print("the device was deleted", flush=True)
                return EXIT_OK
            elif args.all and kind == "attributes":
                print(
                    f"{_clock(int(time.time() * 1000))} {ev['scope']} "
                    f"{json.dumps(ev['values'])} deleted {ev['deleted']}",
                    flush=True,
                )
            elif args.all and kind == "rpc":
                print(
                    f"{_clock(int(time.time() * 1000))} RPC {ev['id']} {ev['method']} "
                    f"{ev['status']} {json.dumps(ev.get('response'))}",
                    flush=True,
                )
            elif args.all and kind == "log":
                arrow = "->" if ev["dir"] == "up" else "<-"
                print(f"{_clock(ev['ts'])} {arrow} {ev['topic']} {ev['payload']}", flush=True)
        print("the server closed the stream", flush=True)
        return EXIT_OK

    return _run(args, body)


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def cmd_firmware(args: argparse.Namespace) -> int:
    """Uploads an image as an OTA package and assigns it to a device (it gets the fw_*
    shared attributes and can download the image over MQTT)."""

    def body(rest: Rest) -> int:
        try:
            with open(args.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise RestError(0, f"cannot read {args.path!r}: {exc.strerror or exc}") from None
        device = rest.device(args.device)
        info = {
            "title": args.title,
            "version": args.version,
            "type": "FIRMWARE",
            "deviceProfileId": device.get("deviceProfileId"),
            "tag": args.tag,
        }
        package = rest.call("POST", "/api/otaPackage", info)
        pid = package["id"]["id"]
        form, ctype = _multipart("file", os.path.basename(args.path), data)
        q = urllib.parse.urlencode({"checksumAlgorithm": args.algorithm})
        _, raw = rest.raw("POST", f"/api/otaPackage/{pid}?{q}", form, content_type=ctype)
        uploaded = json.loads(raw)
        device["firmwareId"] = {"entityType": "OTA_PACKAGE", "id": pid}
        rest.call("POST", "/api/device", device)
        print(
            f"firmware {args.title} {args.version} ({len(data)} bytes, {args.algorithm} "
            f"{uploaded.get('checksum')}) assigned to {args.device!r}",
            flush=True,
        )
        return EXIT_OK

    return _run(args, body)
