"""MO scenarios: a subscriber texts a short code, a handler runs a small business process.

Start with ``engine.py`` (how an MO becomes exactly one committed outcome and reply) and
``handler.py`` (the interface a handler implements). Scenario files are YAML under
``scenarios/`` (``config.py`` validates them). The built-in handlers are in ``builtin/``.
"""
