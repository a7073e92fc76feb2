"""What a restart sends again: the journal's unfinished messages as they go back to the
carrier queues (``MtPipeline.recover``).

- A message still ``accepted`` (journaled and answered, no part acknowledged by a
  carrier, or its outcome not flushed before the daemon died) goes again whole; one
  scheduled, or waiting for a retry, keeps its time (``next_attempt_at``).
- A message in parts cut off between its parts (``submitted``: some parts acknowledged)
  goes on from the first part no carrier has accepted, so a part is never sent twice
  and the parts keep their order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.gateway.outbound import OutboundMessage
from smppgw.store import MessageState

if TYPE_CHECKING:
    from smppgw.store import Store, StoredMessage

__all__ = ["outbound_from_stored", "recovered_outbound"]


def outbound_from_stored(m: StoredMessage) -> OutboundMessage:
    """The sending view of a message read back from the journal."""
    return OutboundMessage.of(m.id, m)


async def recovered_outbound(store: Store, far_after: float | None = None) -> list[OutboundMessage]:
    """The unfinished messages of the journal, ready to queue (see the module); with
    ``far_after``, not those scheduled after it (read as ids: ``Store.far_scheduled``)."""
    recovery = await store.recover(far_after)
    out = [
        outbound_from_stored(stored)
        for stored in recovery.messages
        if stored.state is MessageState.ACCEPTED
    ]
    in_parts = [
        m for m in recovery.messages if m.state is MessageState.SUBMITTED and m.part_count > 1
    ]
    accepted = await store.part_states([m.id for m in in_parts]) if in_parts else {}
    for stored in in_parts:
        done = accepted.get(stored.id, {})
        next_part = next((p for p in range(stored.part_count) if p not in done), None)
        if next_part is not None:
            message = outbound_from_stored(stored)
            message.next_part = next_part
            out.append(message)
    return out
