"""The daemon around the core: configuration, logging, metrics endpoint, supervision.

This package wires the layers together, so it is the only one allowed to import all of
them; nothing below it imports ``smppgw.app``.
"""
