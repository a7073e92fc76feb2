"""Thin trio I/O around the sans-I/O protocol core: streams, carrier binds, the server."""
