"""ThingsBoard device SDK: the MicroPython client API on CPython, with a Rust engine.

The documented entry point is ``from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient``.
"""

import os as _os


def _one_engine() -> None:
    """Refuses a package folder holding two builds of the engine.

    Design: the wheel is abi3 (``_engine.abi3.so``); an in-place build made before that
    (``maturin develop`` leaves ``_engine.cpython-3XX-*.so``) would be imported instead,
    silently, because CPython prefers the version-specific name.
    """
    here = _os.path.dirname(__file__)
    try:
        names = sorted(
            n for n in _os.listdir(here) if n.startswith("_engine.") and n.endswith((".so", ".pyd"))
        )
    except OSError:
        return
    if len(names) > 1:
        raise ImportError(
            f"two builds of thingsboard_sdk's engine in {here}: {', '.join(names)}; "
            "delete the stale one (an older in-place build) and import again"
        )


_one_engine()

from ._engine import __version__  # noqa: E402

__all__ = ["__version__"]
