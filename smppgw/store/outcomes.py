"""What the MT pipeline learnt since its last flush, written in ONE transaction.

The pipeline used to write its outcomes with one call per kind (carrier ids, requeues,
partner receipts, part states, final states, processed receipts): six commits, and a
kill between any two left the journal half-way. Two such halves were duplicates seen
by partners: a receipt journaled and its message made final, but the carrier receipt
that caused it not yet marked processed, is applied again at the next start; and a
message made final twice (a carrier that repeats a receipt, two binds racing) queued
a partner receipt each time.

Written as one work item (one savepoint of the writer's batch) the flush is all or
nothing, and the partner receipt of a final outcome is queued only if that outcome was
the one that made the message final (``mark_final`` applies the first final outcome
only): a message gets one partner receipt however often it is made final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.store import inbound, journal

if TYPE_CHECKING:
    import sqlite3

    from smppgw.store.records import FinalOutcome, NewReceipt, Requeue, Submitted

__all__ = ["OutcomeBatch", "apply_outcomes"]


@dataclass(frozen=True, slots=True)
class OutcomeBatch:
    """One flush of the pipeline. ``receipts[i]`` is the partner receipt owed if
    ``finals[i]`` makes its message final (None: the partner asked for none)."""

    submitted: list[Submitted] = field(default_factory=list)
    requeues: list[Requeue] = field(default_factory=list)
    part_states: list[tuple[str, str, str]] = field(default_factory=list)
    finals: list[FinalOutcome] = field(default_factory=list)
    receipts: list[NewReceipt | None] = field(default_factory=list)
    processed_inbound: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.receipts) != len(self.finals):
            raise ValueError("one receipt (or None) per final outcome")

    @property
    def rows(self) -> int:
        return (
            len(self.submitted)
            + len(self.requeues)
            + len(self.part_states)
            + len(self.finals)
            + len(self.processed_inbound)
        )


def apply_outcomes(conn: sqlite3.Connection, batch: OutcomeBatch, now: float) -> list[int | None]:
    """Returns, per final outcome, the outbox id of its partner receipt; None when no
    receipt was queued (none asked, or the message was already final)."""
    if batch.submitted:
        journal.mark_submitted(conn, batch.submitted, now)
    if batch.requeues:
        journal.requeue(conn, batch.requeues, now)
    if batch.part_states:
        journal.record_part_states(conn, batch.part_states)
    applied = journal.mark_final(conn, batch.finals, now) if batch.finals else []
    owed = [
        (index, receipt)
        for index, (receipt, made_final) in enumerate(zip(batch.receipts, applied, strict=True))
        if receipt is not None and made_final
    ]
    receipt_ids: list[int | None] = [None] * len(batch.finals)
    if owed:
        ids = inbound.enqueue_receipts(conn, [r for _, r in owed], now)
        for (index, _), receipt_id in zip(owed, ids, strict=True):
            receipt_ids[index] = receipt_id
    if batch.processed_inbound:
        inbound.mark_inbound_processed(conn, batch.processed_inbound, now)
    return receipt_ids
