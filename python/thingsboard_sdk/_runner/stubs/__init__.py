"""Host stand-ins for MicroPython-only modules.

Each file here is loaded under its MicroPython name (``network``, ``machine``, ...) by the
runner's import hook, and only while a script runs; nothing here is a top-level package.
"""
