"""DelayedMessages: due order, ties in arrival order, removal of untouched messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.delayed import DelayedMessages
from smppgw.gateway.outbound import OutboundMessage
from smppgw.store import NewMessage

MSG = NewMessage(partner="acme", source_addr="ACME", destination_addr="8491", body=b"x")


def _message(message_id: int) -> OutboundMessage:
    return OutboundMessage.of(message_id, MSG)


@given(
    st.lists(st.integers(min_value=0, max_value=20), max_size=40),
    st.integers(min_value=-1, max_value=21),
    st.sets(st.integers(min_value=0, max_value=45), max_size=10),
    st.booleans(),
)
def test_pop_due_gives_what_is_due_earliest_first_ties_in_arrival_order(
    dues: list[int], now: int, removed: set[int], at_once: bool
) -> None:
    """Removed one by one or all at once (a cancel by addresses), the rest come out in
    order; the even ids are scheduled by their partner, the odd ones retries."""
    delayed = DelayedMessages()
    for message_id, due in enumerate(dues):
        delayed.push(float(due), _message(message_id), scheduled=message_id % 2 == 0)
    if at_once:
        taken_ids = set(delayed.remove_many(removed))
        assert taken_ids == {i for i in removed if i < len(dues)}
    for message_id in [] if at_once else removed:
        taken = delayed.remove(message_id)
        assert (taken is not None) == (message_id < len(dues))
        assert taken is None or taken.id == message_id
    left = [(due, i) for i, due in enumerate(dues) if i not in removed]
    assert len(delayed) == len(left)
    assert delayed.scheduled == sum(1 for _, i in left if i % 2 == 0)
    assert delayed.next_due() == (min(left)[0] if left else float("inf"))
    assert [m.id for m in delayed.pop_due(float(now))] == [
        i for due, i in sorted(left) if due <= now
    ]
    assert [m.id for m in delayed.pop_due(100.0)] == [i for due, i in sorted(left) if due > now]
    assert len(delayed) == 0


def test_remove_leaves_a_message_that_was_tried() -> None:
    delayed = DelayedMessages()
    tried = _message(1)
    tried.attempts = 1  # a retry: the carrier may hold a copy, too late to cancel
    delayed.push(5.0, tried)
    delayed.push(6.0, _message(2))
    assert delayed.remove(1) is None
    assert list(delayed.remove_many({1, 2})) == [2]
    assert len(delayed) == 1


def test_scheduled_ones_are_counted_apart_from_retries() -> None:
    delayed = DelayedMessages()
    delayed.push(1.0, _message(1), scheduled=True)
    delayed.push(2.0, _message(2))  # a retry
    delayed.push(3.0, _message(3), scheduled=True)
    assert (len(delayed), delayed.scheduled) == (3, 2)
    assert delayed.remove(3) is not None
    assert delayed.scheduled == 1
    assert [m.id for m in delayed.pop_due(2.0)] == [1, 2]
    assert (len(delayed), delayed.scheduled) == (0, 0)
