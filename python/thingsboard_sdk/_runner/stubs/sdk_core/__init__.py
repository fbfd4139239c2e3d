"""``sdk_core`` stand-in: the MicroPython SDK's core package, as aliases of thingsboard_sdk."""
