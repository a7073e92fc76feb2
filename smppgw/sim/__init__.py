"""The built-in SMSC simulator and a partner load generator.

- :class:`SimulatedSmsc` (:mod:`.smsc`): accounts, sessions, message ids, receipts
  (:mod:`.receipts`), MO injection (:mod:`.mo`) and faults (:mod:`.faults`), usable as a
  library in tests and as ``smppgw sim``; :func:`serve_control` (:mod:`.control`) is its
  small HTTP control endpoint.
- :func:`run_load` (:mod:`.loadgen`): a partner that binds, keeps a window of submits in
  flight, waits for receipts and returns a :class:`LoadSummary` (``smppgw loadgen``).
"""

from __future__ import annotations

from smppgw.sim.control import serve_control
from smppgw.sim.faults import FaultError, Faults
from smppgw.sim.loadgen import LoadSummary, run_load
from smppgw.sim.smsc import (
    Account,
    BindRecord,
    MoRecord,
    ReceiptRecord,
    SimConfig,
    SimStatistics,
    SimulatedSmsc,
    SubmitRecord,
)

__all__ = [
    "Account",
    "BindRecord",
    "FaultError",
    "Faults",
    "LoadSummary",
    "MoRecord",
    "ReceiptRecord",
    "SimConfig",
    "SimStatistics",
    "SimulatedSmsc",
    "SubmitRecord",
    "run_load",
    "serve_control",
]
