"""The sans-I/O SMPP 3.4 core: PDUs, codec, text, receipts, the session state machine.

Nothing here does I/O or reads a clock: bytes and time values go in, PDUs, bytes and
deadlines come out. ``import-linter`` holds that rule in CI.
"""
