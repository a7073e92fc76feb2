"""What the MT pipeline counts (``MtPipeline.statistics``): read by the metrics and
``smppgw status``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MtStatistics"]


@dataclass(frozen=True, slots=True)
class MtStatistics:
    queued: int
    #: Waiting for their schedule or a retry.
    delayed: int
    in_flight_receipts: int
    submitted_parts: int
    failed: int
    retried: int
    possible_duplicates: int
    receipts_matched: int
    receipts_unmatched: int
    receipts_held: int
    unroutable: int
    flush_errors: int
    #: Messages whose validity_period passed before their first part was sent.
    expired_unsent: int = 0
    #: Waiting messages refused when due: their number had opted out meanwhile.
    opted_out: int = 0
