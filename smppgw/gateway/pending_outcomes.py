"""What the MT pipeline learnt since its last write to the journal: the outcomes that
wait for the next flush (``MtPipeline._flusher``), kept in the order they came.

Sans-I/O. Carrier binds report through plain calls that append here (never awaiting
the disk); :meth:`PendingOutcomes.take` hands everything over as one
:class:`OutcomeBatch` (one transaction: ``store/outcomes.py``) with the partner receipts
its final outcomes owe, and :meth:`PendingOutcomes.give_back` puts a batch that could
not be written back in front of what came since, so the next flush writes it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.gateway.partner_receipts import MessageInfo, partner_receipt
from smppgw.store import FinalOutcome, NewReceipt, OutcomeBatch, Requeue, Submitted

__all__ = ["PendingOutcomes", "TakenOutcomes"]

if TYPE_CHECKING:
    #: (message id, part, carrier, carrier key, state) of a part receipt.
    PartState = tuple[int, int, str, str, str]


@dataclass(slots=True)
class TakenOutcomes:
    """One flush's share: the batch to write, and what :meth:`PendingOutcomes.give_back`
    needs if writing it fails."""

    batch: OutcomeBatch
    #: The partner receipt each final outcome owes (None: none asked), as in ``batch``.
    receipts: list[NewReceipt | None]
    infos: list[MessageInfo | None]
    part_states: list[PartState]


@dataclass(slots=True)
class PendingOutcomes:
    submitted: list[Submitted] = field(default_factory=list)
    finals: list[FinalOutcome] = field(default_factory=list)
    #: What a final outcome's partner receipt is built from (None: the partner asked none).
    final_infos: list[MessageInfo | None] = field(default_factory=list)
    requeues: list[Requeue] = field(default_factory=list)
    #: Journaled carrier receipts applied: marked processed with what they caused.
    applied: list[int] = field(default_factory=list)
    #: Part receipts of messages in parts, to keep in the journal.
    part_states: list[PartState] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.submitted or self.finals or self.requeues or self.applied or self.part_states
        )

    def add_final(self, outcome: FinalOutcome, info: MessageInfo | None) -> None:
        self.finals.append(outcome)
        self.final_infos.append(info)

    def take(self, now: float) -> TakenOutcomes:
        """Everything pending, as one batch; this is empty afterwards."""
        finals, infos = self.finals, self.final_infos
        part_states = self.part_states
        receipts = [
            None
            if info is None
            else partner_receipt(
                info, outcome.state, status=outcome.status, error=outcome.error, now=now
            )
            for outcome, info in zip(finals, infos, strict=True)
        ]
        batch = OutcomeBatch(
            submitted=self.submitted,
            requeues=self.requeues,
            part_states=[(c, k, v) for _, _, c, k, v in part_states],
            finals=finals,
            receipts=receipts,
            processed_inbound=self.applied,
        )
        self.submitted, self.finals, self.final_infos = [], [], []
        self.requeues, self.applied, self.part_states = [], [], []
        return TakenOutcomes(batch, receipts, infos, part_states)

    def give_back(self, taken: TakenOutcomes) -> None:
        """A batch that was not written goes back before what came since (older first)."""
        batch = taken.batch
        self.applied[:0] = batch.processed_inbound
        self.part_states[:0] = taken.part_states
        self.submitted[:0] = batch.submitted
        self.requeues[:0] = batch.requeues
        self.finals[:0] = batch.finals
        self.final_infos[:0] = taken.infos
