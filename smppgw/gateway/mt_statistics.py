"""What the MT pipeline counts (``MtPipeline.statistics``): read by the metrics and
``smppgw status``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["COUNTS", "MtStatistics"]

#: What the pipeline counts, by the names it counts them under.
COUNTS = (
    *("submitted", "failed", "retried", "dups", "matched", "unmatched", "held"),
    *("unroutable", "flush_errors", "receipt_timeouts", "expired_unsent", "opted_out"),
)


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

    @classmethod
    def of(
        cls, counts: Mapping[str, int], *, queued: int, delayed: int, in_flight_receipts: int
    ) -> MtStatistics:
        """From the pipeline's :data:`COUNTS` and what its queues hold now."""
        c = counts
        return cls(
            queued=queued,
            delayed=delayed,
            in_flight_receipts=in_flight_receipts,
            submitted_parts=c["submitted"],
            failed=c["failed"],
            retried=c["retried"],
            possible_duplicates=c["dups"],
            receipts_matched=c["matched"],
            receipts_unmatched=c["unmatched"],
            receipts_held=c["held"],
            unroutable=c["unroutable"],
            flush_errors=c["flush_errors"],
            expired_unsent=c["expired_unsent"],
            opted_out=c["opted_out"],
        )
