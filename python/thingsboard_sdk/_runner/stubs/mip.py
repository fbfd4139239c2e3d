"""``mip`` stand-in: installing this SDK is a no-op (it is already here, as
``thingsboard_sdk``); anything else is a clear error."""

import logging

log = logging.getLogger("thingsboard_sdk.runner.mip")

_PROVIDED = ("thingsboard-micropython-client-sdk", "thingsboard-micro-sdk-core")


def install(package, index=None, target=None, version=None, mpy=True):
    """Accepts the ThingsBoard MicroPython SDK (already provided on the host).

    Raises:
        ImportError: for any other package: the host runner does not fetch MicroPython
            packages.
    """
    name = str(package).rstrip("/")
    if name.endswith(".git"):
        name = name[:-4]
    if name.rsplit("/", 1)[-1] in _PROVIDED or name.rsplit(":", 1)[-1] in _PROVIDED:
        log.info(
            "mip.install(%r): nothing to do, thingsboard_sdk provides it on this host", package
        )
        return None
    raise ImportError(
        f"mip.install({package!r}): the host runner only provides the ThingsBoard SDK; "
        "install a CPython equivalent with pip, or put the module's .py file next to the script"
    )
