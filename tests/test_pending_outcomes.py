"""PendingOutcomes: a flush takes everything in order; a batch that could not be written
goes back in front of what came since."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.pending_outcomes import PendingOutcomes
from smppgw.store import FinalOutcome, MessageState, Requeue, Submitted


def _fill(pending: PendingOutcomes, ids: list[int]) -> None:
    for i in ids:
        pending.submitted.append(Submitted(i, "c1", f"k{i}", 0))
        pending.requeues.append(Requeue(i, 1.0, "later"))
        pending.add_final(FinalOutcome(i, MessageState.SENT, None, None, charge_parts=1), None)
        pending.applied.append(i)
        pending.part_states.append((i, 0, "c1", f"k{i}", "delivered"))


@given(st.lists(st.integers(0, 999), max_size=8), st.lists(st.integers(1000, 1999), max_size=8))
def test_a_batch_given_back_is_written_before_what_came_since(
    first: list[int], later: list[int]
) -> None:
    pending = PendingOutcomes()
    _fill(pending, first)
    assert bool(pending) == bool(first)
    taken = pending.take(0.0)
    assert not pending
    assert [s.message_id for s in taken.batch.submitted] == first
    assert taken.receipts == [None] * len(first)  # no receipt asked
    _fill(pending, later)
    pending.give_back(taken)
    again = pending.take(0.0).batch
    order = first + later
    assert [s.message_id for s in again.submitted] == order
    assert [r.message_id for r in again.requeues] == order
    assert [f.message_id for f in again.finals] == order
    assert again.processed_inbound == order
    assert again.part_states == [("c1", f"k{i}", "delivered") for i in order]
    assert again.receipts == [None] * len(order)
