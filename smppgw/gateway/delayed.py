"""Messages that wait for a time before they join a carrier queue: a partner's
``schedule_delivery_time``, or a retry's delay.

Sans-I/O: a heap ordered by due time (the caller's clock; the pipeline uses trio's),
first come first out among equals. The pipeline's release task sleeps until
:meth:`DelayedMessages.next_due` and queues what :meth:`DelayedMessages.pop_due` gives.

Held whole here: retries, and messages scheduled less than a minute ahead. Those due
further ahead wait as their journal id only and are read back when due
(``gateway/far_ahead.py``); reading back by id, not by a scan for what is due, never
confuses a message with one already released whose new state is not yet flushed. The
price of holding whole is memory, so it is bounded: scheduled messages (these and the
far-ahead ids together) by the server's ``max_scheduled_messages`` (counted apart,
:attr:`DelayedMessages.scheduled`, so that one partner's campaign for tomorrow does not
fill the ``max_pending_messages`` that today's traffic needs), retries within
``max_pending_messages``; beyond, partners are answered ``ESME_RMSGQFUL``.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Set

    from smppgw.gateway.outbound import OutboundMessage

__all__ = ["DelayedMessages"]


class DelayedMessages:
    """Messages keyed by the time they are due."""

    __slots__ = ("_heap", "_seq", "scheduled")

    def __init__(self) -> None:
        #: (due, arrival, scheduled by its partner (not a retry), message)
        self._heap: list[tuple[float, int, bool, OutboundMessage]] = []
        self._seq = 0
        #: How many of them wait for their partner's schedule (the others are retries).
        self.scheduled = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, message: OutboundMessage, *, scheduled: bool = False) -> None:
        self._seq += 1
        self.scheduled += scheduled
        heapq.heappush(self._heap, (due, self._seq, scheduled, message))

    def next_due(self) -> float:
        """When the earliest message is due; infinity when there is none."""
        return self._heap[0][0] if self._heap else math.inf

    def pop_due(self, now: float) -> list[OutboundMessage]:
        """Take the messages due at ``now``, earliest first."""
        heap = self._heap
        out: list[OutboundMessage] = []
        while heap and heap[0][0] <= now:
            _, _, scheduled, message = heapq.heappop(heap)
            self.scheduled -= scheduled
            out.append(message)
        return out

    def remove(self, message_id: int) -> OutboundMessage | None:
        """Take out message ``message_id`` if it waits here untouched (scheduled, no part
        sent, never tried): a partner cancels or replaces it."""
        return self.remove_many({message_id}).get(message_id)

    def remove_many(self, message_ids: Set[int]) -> dict[int, OutboundMessage]:
        """Take out those of ``message_ids`` that wait here untouched. A linear scan, as
        ``CarrierQueue.remove_many``: cancels are rare."""
        out: dict[int, OutboundMessage] = {}
        keep = []
        for entry in self._heap:
            message = entry[3]
            if message.id in message_ids and message.untouched:
                out[message.id] = message
                self.scheduled -= entry[2]
            else:
                keep.append(entry)
        if out:
            heapq.heapify(keep)
            self._heap = keep
        return out
