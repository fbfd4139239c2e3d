"""Command line: ``python -m thingsboard_sdk <command>``.

Commands:
    devserver   run the embedded ThingsBoard-compatible MQTT dev server
    demo        start a dev server, run an example device against it, print what it stored
    run         run a MicroPython device script unchanged on this host
    simulate    simulate many devices from one process
    rpc, shared, show, follow, firmware
                drive a running dev server over its REST API (docs/devserver.md)

Each command is one ``cmd_*`` function taking the parsed arguments and returning the exit
code, plus an optional ``*_args`` function adding its options; add a command by adding a row
to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad arguments, port in use, not implemented

# The device `devserver` creates when no --device is given (documented in --help).
DEMO_DEVICE_NAME = "Demo Device"
DEMO_DEVICE_TOKEN = "DEMO_DEVICE_TOKEN"


def _out(*parts: Any) -> None:
    print(*parts, flush=True)


def _err(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---- devserver ----------------------------------------------------------------------------------


def _pair(what: str, example: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for ``A:B`` (split at the last ``:``; both parts non-empty)."""

    def parse(text: str) -> tuple[str, str]:
        first, sep, second = text.rpartition(":")
        if not sep or not first or not second:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} (e.g. {example})")
        return first, second

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def devserver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument(
        "--port", type=int, default=1883, help="port to bind, 0 = any free (default %(default)s)"
    )
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="NAME:TOKEN",
        type=_pair("NAME:TOKEN", '--device "Thermostat A1:A1_TEST_TOKEN"'),
        help="add a device with an access token (repeatable); without any, a demo device "
        f"{DEMO_DEVICE_NAME!r} with token {DEMO_DEVICE_TOKEN} is created",
    )
    p.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="NAME[:TOKEN]",
        help="add a gateway device (repeatable; a token is made when none is given): it may "
        "use the Gateway API (v1/gateway/*), and the sub-devices it names are created",
    )
    p.add_argument(
        "--rate-limits",
        metavar="LIMITS",
        help='ThingsBoard rate limits as "messages;telemetry;datapoints", each '
        '"capacity:seconds,..." or empty (e.g. ";100:1,3000:60;"): enforced per device '
        "and reported by getSessionLimits",
    )
    p.add_argument(
        "--gateway-rate-limits",
        metavar="LIMITS",
        help="the same for what each gateway relays for its sub-devices (gatewayRateLimits)",
    )
    p.add_argument(
        "--provision",
        action="append",
        default=[],
        metavar="KEY:SECRET",
        type=_pair("KEY:SECRET", "--provision my-key:my-secret"),
        help="add a provisioning profile that creates new devices (repeatable)",
    )
    p.add_argument(
        "--firmware",
        action="append",
        default=[],
        metavar="TOKEN:PATH:TITLE:VERSION[:ALGORITHM]",
        type=_firmware_spec,
        help="assign the image at PATH to the device with access token TOKEN (repeatable): "
        "its fw_* attributes are set and pushed, its chunks served; ALGORITHM is one of "
        f"{', '.join(_FW_ALGORITHMS)} (default SHA256); TITLE and VERSION cannot contain ':'",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="keep devices, attributes, telemetry, RPC records, profiles and firmware in a "
        "SQLite database in folder PATH (created if missing) and load them at the next start; "
        "without it everything is in memory only",
    )
    p.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="server certificate (chain) for an MQTTS listener on --tls-port; needs --tls-key",
    )
    p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument(
        "--tls-port",
        type=int,
        default=8883,
        help="port of the MQTTS listener, 0 = any free (default %(default)s)",
    )
    p.add_argument(
        "--tls-selfsigned",
        metavar="DIR",
        help="write a CA, a server certificate for localhost/127.0.0.1 and a device certificate "
        "to DIR (kept if there already), serve MQTTS with them and register the device "
        f"{X509_DEVICE_NAME!r} with that certificate (X.509 authentication)",
    )
    p.add_argument("--quiet", action="store_true", help="do not log connections and messages")
    from ._devserver_http import add_arguments as add_http_arguments

    add_http_arguments(p)


# The device --tls-selfsigned registers with the device certificate.
X509_DEVICE_NAME = "X509 Device"

# ThingsBoard's checksum algorithms (spec 11.1), for --firmware.
_FW_ALGORITHMS = ("MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128")


@dataclass
class _Firmware:
    token: str
    path: str
    title: str
    version: str
    algorithm: str
    checksum: str = ""  # set once assigned, for the banner


def _firmware_spec(text: str) -> _Firmware:
    """The argparse type of ``--firmware TOKEN:PATH:TITLE:VERSION[:ALGORITHM]``.

    TOKEN ends at the first ``:``; TITLE, VERSION and ALGORITHM are taken from the right, so
    PATH may contain ``:``. A last part naming an algorithm is the algorithm.
    """
    usage = (
        f"{text!r} is not TOKEN:PATH:TITLE:VERSION[:ALGORITHM] "
        "(e.g. --firmware A1_TEST_TOKEN:build/lamp.bin:lamp:1.1:SHA256)"
    )
    token, sep, rest = text.partition(":")
    parts = rest.rsplit(":", 3)
    algorithm = "SHA256"
    if len(parts) == 4 and parts[3].upper() in _FW_ALGORITHMS:
        algorithm = parts[3].upper()
        parts = parts[:3]
    elif len(parts) == 4:
        parts = rest.rsplit(":", 2)
    if not sep or not token or len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(usage)
    path, title, version = parts
    return _Firmware(token, path, title, version, algorithm)


_firmware_spec.__name__ = "TOKEN:PATH:TITLE:VERSION[:ALGORITHM]"


def _read_firmware(specs: list[_Firmware], devices: list[tuple[str, str]]) -> list[tuple]:
    """``(device name, image, spec)`` per ``--firmware``; ValueError naming what is wrong."""
    names = {token: name for name, token in devices}
    out = []
    for fw in specs:
        if fw.token not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ValueError(
                f"--firmware: no device has access token {fw.token!r} (tokens: {known})"
            )
        try:
            with open(fw.path, "rb") as f:
                image = f.read()
        except OSError as exc:
            raise ValueError(
                f"--firmware: cannot read {fw.path!r}: {exc.strerror or exc}"
            ) from None
        out.append((names[fw.token], image, fw))
    return out


class _Stop(Exception):
    """Raised by the SIGTERM handler so that the server stops as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop()


def _gateway_spec(text: str) -> tuple[str, str]:
    """``NAME`` or ``NAME:TOKEN`` of ``--gateway``; a token is made when none is given."""
    import secrets

    name, sep, token = text.rpartition(":")
    if not sep or not name:
        name, token = text, ""
    return name, token or secrets.token_urlsafe(15)


def _limit_options(args: argparse.Namespace) -> dict:
    """DevServer options from ``--rate-limits`` and ``--gateway-rate-limits``."""
    out: dict = {}
    for arg, prefix in ((args.rate_limits, ""), (args.gateway_rate_limits, "gateway_")):
        if not arg:
            continue
        parts = (arg.split(";") + ["", "", ""])[:3]
        names = ("rate_limits", "telemetry_rate_limits", "telemetry_data_point_rate_limits")
        for name, value in zip(names, parts):
            if value.strip():
                out[prefix + name] = value.strip()
    return out


def cmd_devserver(args: argparse.Namespace) -> int:
    """Runs the dev server until Ctrl-C (or SIGTERM)."""
    from .devserver import DevServer

    devices = args.device or ([] if args.gateway else [(DEMO_DEVICE_NAME, DEMO_DEVICE_TOKEN)])
    gateways = [_gateway_spec(g) for g in args.gateway]
    try:
        firmware = _read_firmware(args.firmware, devices)
    except ValueError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    if args.tls_selfsigned and (args.tls_cert or args.tls_key):
        _err("error: --tls-selfsigned replaces --tls-cert and --tls-key; give one or the other")
        return EXIT_USAGE
    if bool(args.tls_cert) != bool(args.tls_key):
        _err("error: --tls-cert and --tls-key go together")
        return EXIT_USAGE
    tls: dict[str, Any] = {}
    if args.tls_cert or args.tls_selfsigned:
        tls = {"tls_cert": args.tls_cert, "tls_key": args.tls_key, "tls_port": args.tls_port}
        if args.tls_selfsigned:
            tls = {"tls_selfsigned": args.tls_selfsigned, "tls_port": args.tls_port}
    from functools import partial

    from . import _devserver_http

    try:
        server, http_note = _devserver_http.start(
            partial(
                DevServer,
                args.host,
                args.port,
                data=args.data,
                admin=_devserver_http.admin_of(args),
                **tls,
                **_limit_options(args),
            ),
            args.http_port,
        )
    except OSError as exc:
        _err(f"error: {exc.strerror or exc}")
        if (args.port or args.http_port) and not (args.data and exc.errno is None):
            _err(
                "hint: another broker or server may use that port; try --port 0 or "
                "--http-port 0 (any free port)"
            )
        return EXIT_USAGE
    except ValueError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: Ctrl-C only
        pass
    # Design: from here on Ctrl-C, wherever it lands, stops the server and exits 0.
    try:
        # With --quiet no log stream: every line it queued would wake this thread (and take
        # the GIL from the server's log scope) only to be thrown away.
        stream = None if args.quiet else server.log_stream()
        try:
            known = set(server.devices())  # with --data, those of the previous runs
            if known and not args.device and not args.gateway:
                # A store that has devices keeps them as they are: the demo device is only
                # for a new one (an existing folder without it does not get it added).
                demo = DEMO_DEVICE_NAME in known
                devices = [(DEMO_DEVICE_NAME, DEMO_DEVICE_TOKEN)] if demo else []
            for name, token in devices:
                if name not in known:
                    server.add_device(name, token)
            if server.tls_files and X509_DEVICE_NAME not in known:
                with open(server.tls_files["device_cert"], encoding="ascii") as f:
                    server.add_device(X509_DEVICE_NAME, cert_pem=f.read())
            for name, token in gateways:
                if name not in known:
                    server.add_device(name, token, gateway=True)
            for key, secret in args.provision:
                server.add_provision_profile(key, secret)
            for name, image, fw in firmware:
                fw.checksum = server.set_firmware(name, image, fw.title, fw.version, fw.algorithm)
        except ValueError as exc:
            _err(f"error: {exc}")
            return EXIT_USAGE
        _serve(server, stream, devices + gateways, args, http_note)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _out("dev server stopped")
    return EXIT_OK


def _serve(
    server: Any, stream: Any, devices: list, args: argparse.Namespace, http_note: Optional[str]
) -> None:
    """Prints the banner, then one line per log line until the server stops."""
    from ._devserver_http import admin_of, banner

    _out(f"ThingsBoard dev server listening on {server.host}:{server.port}")
    if server.data:
        _out(f"data in {server.data} ({len(server.devices())} devices)")
    if http_note:
        _out(http_note)
    for line in banner(server, admin_of(args)):
        _out(line)
    for name, token in devices:
        _out(f"device {name!r}: access token {token}")
    for key, secret in args.provision:
        _out(f"provisioning profile: key {key!r}, secret {secret!r}")
    for fw in args.firmware:
        _out(
            f"firmware for token {fw.token}: {fw.title} {fw.version} from {fw.path} "
            f"({fw.algorithm} {fw.checksum})"
        )
    if not args.device and not args.gateway and DEMO_DEVICE_NAME in server.devices():
        pub = f"mosquitto_pub -h {server.host} -p {server.port} -u {DEMO_DEVICE_TOKEN}"
        _out(f"try: {pub} -t v1/devices/me/telemetry -m '{{\"temperature\":25}}'")
    if server.tls_port is not None:
        _out(f"MQTTS (TLS) listening on {server.host}:{server.tls_port}")
    if server.tls_files:
        f = server.tls_files
        _out(
            f"device {X509_DEVICE_NAME!r}: X.509 certificate {f['device_cert']}, "
            f"key {f['device_key']}, CA {f['ca_cert']}"
        )
        pub = (
            f"mosquitto_pub -h {server.host} -p {server.tls_port} --cafile {f['ca_cert']} "
            f"--cert {f['device_cert']} --key {f['device_key']}"
        )
        _out(f"try: {pub} -t v1/devices/me/telemetry -m '{{\"temperature\":25}}'")
        _out(
            f"or: TBDeviceMqttClient({server.host!r}, {server.tls_port}, tls=True, "
            f"ca_certs={f['ca_cert']!r}, cert_file={f['device_cert']!r}, "
            f"key_file={f['device_key']!r})"
        )
    _out("press Ctrl-C to stop")
    if stream is None:
        while True:  # until Ctrl-C or SIGTERM; the server stops in cmd_devserver's finally
            time.sleep(3600)
    while True:
        line = stream.recv(None)
        if line is None:  # the server stopped
            return
        _out(f"{time.strftime('%H:%M:%S')} {line}")


# ---- demo ---------------------------------------------------------------------------------------


class _DemoError(Exception):
    pass


def _pump(client: Any, done: Callable[[], Any], timeout: float, what: str) -> Any:
    """Lets ``client`` process messages until ``done()`` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise _DemoError(f"timed out waiting for {what}")
        client.wait_for_msg(timeout=min(0.1, left))


def cmd_demo(args: argparse.Namespace) -> int:
    """Starts a dev server on a free port and runs an example device through telemetry,
    attributes, an attribute subscription, server and client RPC and provisioning."""
    from .devserver import DevServer

    try:
        with DevServer("127.0.0.1", 0) as server:
            log = server.log_stream()
            try:
                _demo(server)
            finally:
                server.stop()
                _out("\n== server log")
                while True:
                    line = log.try_recv()
                    if line is None:
                        break
                    _out(f"  {line}")
    except _DemoError as exc:
        _err(f"demo failed: {exc}")
        return EXIT_FAILED
    _out("\ndemo finished")
    return EXIT_OK


def _demo(server: Any) -> None:
    from .tb_device_mqtt import ProvisionError, TBDeviceMqttClient

    device, token = "demo-thermostat", "DEMO_THERMOSTAT_TOKEN"
    key, secret = "demo-provision-key", "demo-provision-secret"
    server.add_device(device, token)
    server.add_provision_profile(key, secret)
    server.set_shared_attributes(device, {"targetTemperature": 21.5})
    host, port = server.host, server.port
    _out(f"dev server on {host}:{port}; device {device!r} with access token {token}")

    client = TBDeviceMqttClient(host, port, access_token=token, client_id="demo-thermostat")
    if client.connect(timeout=10) is None:
        raise _DemoError(f"connect failed: {client.last_error}")
    try:
        _out("\n== telemetry")
        data = {"temperature": 22.4, "humidity": 48, "heating": True, "mode": "eco"}
        if not client.send_telemetry(data).wait(5):
            raise _DemoError("telemetry not acknowledged")
        _out(f"sent {data}")

        _out("\n== client attributes")
        attrs = {"model": "TH-100", "firmwareVersion": "1.0.3"}
        if not client.send_attributes(attrs).wait(5):
            raise _DemoError("attributes not acknowledged")
        _out(f"sent {attrs}")

        _out("\n== attribute request")
        got: dict = {}
        client.request_attributes(
            client_keys=["model"],
            shared_keys=["targetTemperature"],
            callback=lambda result, exc: got.update(result=result, exc=exc),
            timeout=5,
        )
        if got.get("exc") is not None or "result" not in got:
            raise _DemoError(f"attribute request failed: {got.get('exc')}")
        _out(f"response {got['result']}")

        _out("\n== attribute subscription")
        pushed: list = []
        client.subscribe_to_attribute(
            "targetTemperature", lambda result, exc: pushed.append(result)
        )
        server.set_shared_attributes(device, {"targetTemperature": 23.0})
        _pump(client, lambda: pushed, 10, "the shared attribute push")
        _out(f"server set targetTemperature=23.0; device got {pushed[0]}")

        _out("\n== server-side RPC")

        def on_rpc(request_id: str, body: Any) -> None:
            _out(f"device got RPC {request_id}: {body}")
            client.send_rpc_reply(request_id, {"temperature": 22.4, "unit": "C"})

        client.set_server_side_rpc_request_handler(on_rpc)
        call = server.start_rpc(device, "getTemperature", {"unit": "C"}, expiry=10)
        replies: list = []

        def replied() -> bool:
            done, reply = call.poll()
            if done:
                replies.append(reply)
            return done

        _pump(client, replied, 10, "the RPC reply")
        _out(f"server got reply {replies[0]}")

        _out("\n== client-side RPC")
        server.set_client_rpc_reply("getCurrentTime", {"time": 1700000000000})
        answers: list = []
        client.send_rpc_call(
            "getCurrentTime", {}, lambda rid, resp, exc: answers.append((resp, exc)), timeout=5
        )
        if not answers or answers[0][1] is not None:
            raise _DemoError(f"client RPC failed: {answers}")
        _out(f"device got {answers[0][0]}")
    finally:
        client.disconnect()

    _out("\n== provisioning")
    request = TBDeviceMqttClient.get_provision_request(key, secret, device_name="demo-sensor")
    try:
        creds = TBDeviceMqttClient.provision(host, port, request, timeout=10)
    except ProvisionError as exc:
        raise _DemoError(f"provisioning failed: {exc}") from None
    _out(f"provisioned 'demo-sensor': {creds}")
    sensor = TBDeviceMqttClient(
        host, port, access_token=creds["credentialsValue"], client_id="demo-sensor"
    )
    if sensor.connect(timeout=10) is None:
        raise _DemoError(f"provisioned device cannot connect: {sensor.last_error}")
    try:
        sensor.send_telemetry({"battery": 97}).wait(5)
    finally:
        sensor.disconnect()
    server.wait_for(
        lambda: len(server.connection_events(device="demo-sensor")) >= 2, 5, "the disconnect"
    )

    _out("\n== what the server stored")
    for name in server.devices():
        _out(f"device {name!r}")
        for p in server.telemetry(name):
            _out(f"  telemetry  {p.key} = {p.value!r} ({p.type}, ts {p.ts})")
        for k, (t, v) in server.client_attributes(name, typed=True).items():
            _out(f"  client attribute  {k} = {v!r} ({t})")
        for k, (t, v) in server.shared_attributes(name, typed=True).items():
            _out(f"  shared attribute  {k} = {v!r} ({t})")
        for r in server.rpc_records(name):
            _out(f"  server RPC {r.id} {r.method}({r.params}) {r.status} -> {r.reply}")
        for r in server.client_rpc_requests(name):
            _out(f"  client RPC {r.id} {r.method}({r.params}) -> {r.reply}")
    for d in server.provisioned_devices():
        _out(f"provisioned {d.name!r} with profile {d.profile_key!r} ({d.credentials['type']})")
    for e in server.connection_events():
        _out(f"connection {e.conn_id} {e.kind} {e.device or ''} ({e.reason})")


# ---- run and simulate (each lives in its own module) --------------------------------------------


def run_args(p: argparse.ArgumentParser) -> None:
    from ._runner import add_arguments

    add_arguments(p)


def cmd_run(args: argparse.Namespace) -> int:
    from ._runner import run

    return run(args)


def simulate_args(p: argparse.ArgumentParser) -> None:
    from ._simulate import add_arguments

    add_arguments(p)


def cmd_simulate(args: argparse.Namespace) -> int:
    from ._simulate import run

    return run(args)


# ---- REST commands (a running dev server) --------------------------------------------------------


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """``_restcli.<name>``, imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        from . import _restcli

        return int(getattr(_restcli, name)(args))

    return run


def _lazy_args(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        from . import _restcli

        getattr(_restcli, name)(p)

    return add


# ---- the command table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    add_args: Optional[Callable[[argparse.ArgumentParser], None]] = None


COMMANDS = [
    Command(
        "devserver", "run the ThingsBoard-compatible MQTT dev server", cmd_devserver, devserver_args
    ),
    Command(
        "demo", "run an example device against a dev server and print what it stored", cmd_demo
    ),
    Command("run", "run a MicroPython device script unchanged on this host", cmd_run, run_args),
    Command("simulate", "simulate many devices from one process", cmd_simulate, simulate_args),
    Command(
        "rpc",
        "send an RPC to a device of a running dev server and print the reply",
        _lazy("cmd_rpc"),
        _lazy_args("rpc_args"),
    ),
    Command(
        "shared",
        "set or delete shared attributes of a device of a running dev server",
        _lazy("cmd_shared"),
        _lazy_args("shared_args"),
    ),
    Command(
        "show",
        "show the devices, or a device's latest telemetry and attributes",
        _lazy("cmd_show"),
        _lazy_args("show_args"),
    ),
    Command(
        "follow",
        "print a device's telemetry live as it arrives",
        _lazy("cmd_follow"),
        _lazy_args("follow_args"),
    ),
    Command(
        "firmware",
        "upload a firmware image and assign it to a device of a running dev server",
        _lazy("cmd_firmware"),
        _lazy_args("firmware_args"),
    ),
]


def build_parser(commands: list[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m thingsboard_sdk",
        description="ThingsBoard device SDK tools",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for c in commands:
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        if c.add_args:
            c.add_args(p)
        p.set_defaults(run=c.run, parser=p)
    return parser


def _version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # the engine is not built
        return "(engine not built)"


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list):
    """Exits with a usage error naming the first unknown option and the closest known one."""
    from ._runner._options import option_strings, unknown_option_message

    sub = getattr(args, "parser", parser)
    options = [w for w in extra if w.startswith("-") and w not in ("-", "--")]
    if not options:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    tail = "options for the script go after --" if args.command == "run" else ""
    sub.error(unknown_option_message(options[0], option_strings(sub), tail))


def main(argv: Optional[list[str]] = None) -> int:
    """Parses ``argv`` (default ``sys.argv[1:]``) and runs the command; returns the exit
    code (argparse exits with 2 on bad arguments)."""
    args = parse_args(argv)
    return args.run(args)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parses ``argv`` (default ``sys.argv[1:]``); exits 2 on bad arguments.

    Words after the first ``--`` are ``args.script_tail`` for ``run`` (the script's own
    arguments), an error for the other commands.
    """
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    tail = None
    if "--" in words:
        i = words.index("--")
        words, tail = words[:i], words[i + 1 :]
    args, extra = parser.parse_known_args(words)
    if tail is not None:
        if args.command == "run":
            args.script_tail = tail
        else:
            extra += ["--", *tail]
    if extra:
        _unknown_options(parser, args, extra)
    return args


def devserver_main(argv: Optional[list[str]] = None) -> int:
    """The ``thingsboard-devserver`` console script: ``devserver`` with its options."""
    parser = argparse.ArgumentParser(
        prog="thingsboard-devserver", description="run the ThingsBoard-compatible MQTT dev server"
    )
    devserver_args(parser)
    return cmd_devserver(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
