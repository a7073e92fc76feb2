"""smppgw: an SMPP gateway daemon on trio."""

__version__ = "0.1.0"
