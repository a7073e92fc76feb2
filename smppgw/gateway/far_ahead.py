"""Messages scheduled far ahead wait as their journal id only, and are read back when due.

Why: a partner's campaign for tomorrow morning is in the journal from the moment it was
accepted; holding each message whole in memory until then (about 640 bytes each,
``gateway/delayed.py``) is what bounded how much could be scheduled ahead
(``server.max_scheduled_messages``). Here a message due more than
:data:`FAR_AHEAD` seconds ahead is kept as its id (8 bytes, in an ``array``) under its
due time (wall-clock seconds, as journaled, rounded up to the second so that a
campaign's messages share one), and read back from the journal, in batches of at most
:data:`RELEASE_BATCH`, when due. Measured with ``tracemalloc``: 8 bytes a message for a
campaign of a million admitted over 100 seconds, 196 if each has a second of its own.

- **Sans-I/O core**: :class:`ScheduledIds` (ids by due time, earliest first, arrival
  order within one due time).
- **Release** (:meth:`FarAhead.release_due`, called by the pipeline's release task):
  only as many as the carrier queues have room for (``server.max_pending_messages``),
  so that a campaign of a million released at 9:00 is read in step with what the
  carriers take rather than all at once; the rest waits, looked at again every
  :data:`RELEASE_RETRY` seconds. A message read back that is no longer waiting
  untouched (final, held) is skipped. A failed read puts the ids back and tries again
  :data:`RELEASE_RETRY` later.
- **Cancel and replace**: :meth:`FarAhead.remove` takes an id out synchronously, as the
  queues do, also one being read back at that moment (its row is dropped when the read
  comes back), so a message is never both cancelled and sent, and one that is due is
  not refused a cancel for the few milliseconds of its read.
"""

from __future__ import annotations

import heapq
import math
from array import array
from typing import TYPE_CHECKING

import structlog

from smppgw.gateway.recovery import outbound_from_stored
from smppgw.store import MessageState, StoreError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence, Set

    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.store import StoredMessage

__all__ = ["FAR_AHEAD", "RELEASE_BATCH", "RELEASE_RETRY", "FarAhead", "ScheduledIds"]

log = structlog.get_logger("smppgw.mt")

#: Seconds ahead beyond which a scheduled message waits as its id only.
FAR_AHEAD = 60.0
#: Messages read back from the journal at once.
RELEASE_BATCH = 1_000
#: Seconds before looking again when the queues are full or a read failed.
RELEASE_RETRY = 0.25


class ScheduledIds:
    """Message ids by due time: earliest first, arrival order within one due time."""

    __slots__ = ("_count", "_dues", "_ids")

    def __init__(self) -> None:
        self._dues: list[float] = []  # a heap of the due times that hold ids
        self._ids: dict[float, array[int]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, due: float, message_id: int) -> None:
        ids = self._ids.get(due)
        if ids is None:
            ids = self._ids[due] = array("q")
            heapq.heappush(self._dues, due)
        ids.append(message_id)
        self._count += 1

    def next_due(self) -> float:
        """The earliest due time; infinity when there is none."""
        return self._dues[0] if self._dues else math.inf

    def pop_due(self, now: float, limit: int) -> list[tuple[float, int]]:
        """Up to ``limit`` of the ids due at ``now``, earliest first, each with its due
        time (to put it back)."""
        out: list[tuple[float, int]] = []
        while self._dues and self._dues[0] <= now and len(out) < limit:
            due = self._dues[0]
            ids = self._ids[due]
            take = min(limit - len(out), len(ids))
            out.extend((due, message_id) for message_id in ids[:take])
            del ids[:take]
            if not ids:
                heapq.heappop(self._dues)
                del self._ids[due]
        self._count -= len(out)
        return out

    def remove(self, message_id: int) -> float | None:
        """Take ``message_id`` out; its due time, or None when it is not here. A scan of
        the arrays (in C): cancels are rare."""
        for due, ids in self._ids.items():
            try:
                index = ids.index(message_id)
            except ValueError:
                continue
            del ids[index]
            self._count -= 1
            if not ids:
                del self._ids[due]
                self._dues.remove(due)
                heapq.heapify(self._dues)
            return due
        return None

    def remove_many(self, message_ids: Set[int]) -> set[int]:
        """Take out those of ``message_ids`` that are here; the ones taken. One pass over
        every array, however many ids (:meth:`remove` scans per id)."""
        taken: set[int] = set()
        for due in list(self._ids):
            ids = self._ids[due]
            hits = [i for i in ids if i in message_ids]
            if not hits:
                continue
            taken.update(hits)
            kept = array("q", (i for i in ids if i not in message_ids))
            self._count -= len(ids) - len(kept)
            if kept:
                self._ids[due] = kept
            else:
                del self._ids[due]
                self._dues.remove(due)
        heapq.heapify(self._dues)
        return taken


class FarAhead:
    """The pipeline's far-ahead schedule (see the module docstring).

    Args:
        read: the journal's messages by id (``Store.messages_by_id``).
        release: queues what was read back, checking it first (``MtPipeline.release``).
        room: how many more messages the carrier queues may take now.
        clock: wall-clock seconds (due times are the journal's).
    """

    def __init__(
        self,
        read: Callable[[Sequence[int]], Awaitable[list[StoredMessage]]],
        release: Callable[[Sequence[OutboundMessage]], Awaitable[object]],
        room: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.ids = ScheduledIds()
        self._read = read
        self._release = release
        self._room = room
        self._clock = clock
        self._retry_at = -math.inf  # wall clock: not before this after a failed read
        self._reading: set[int] = set()  # the ids being read back now
        self._withdrawn: set[int] = set()  # of those, the ones taken out meanwhile
        #: Seconds ahead beyond which a message waits here (tests shorten it).
        self.far_ahead = FAR_AHEAD

    def __len__(self) -> int:
        return len(self.ids)

    def takes(self, message: OutboundMessage, wait: float) -> bool:
        """Keep ``message`` as its id if it is due far enough ahead and untouched (a
        retry keeps its attempts in memory); True when it did."""
        if wait <= self.far_ahead or not message.untouched or message.not_before is None:
            return False
        self.keep(message.not_before, message.id)
        return True

    def keep(self, due: float, message_id: int) -> None:
        """Keep ``message_id`` until ``due`` (wall clock), rounded up to the second: the
        messages of a campaign scheduled relative to their arrival ("in a day") share
        one array a second, not one each."""
        self.ids.push(float(math.ceil(due)), message_id)

    def remove(self, message_id: int) -> bool:
        """Take a message out (a partner's cancel or replace): True when it was here,
        waiting or being read back."""
        if self.ids.remove(message_id) is not None:
            return True
        return bool(self._withdraw_reading({message_id}))

    def remove_many(self, message_ids: Set[int]) -> set[int]:
        """Take out those of ``message_ids`` that are here; the ones taken."""
        taken = self.ids.remove_many(message_ids)
        taken |= self._withdraw_reading(message_ids - taken)
        return taken

    def _withdraw_reading(self, message_ids: Set[int]) -> set[int]:
        """Those of ``message_ids`` being read back now, marked to be dropped."""
        hits = (self._reading & message_ids) - self._withdrawn
        self._withdrawn |= hits
        return hits

    def next_look(self) -> float:
        """Wall-clock seconds when :meth:`release_due` has something to do (infinity:
        nothing waits here)."""
        due = self.ids.next_due()
        if due == math.inf:
            return due
        at = max(due, self._retry_at)
        if self._room() < 1:
            at = max(at, self._clock() + RELEASE_RETRY)
        return at

    async def release_due(self) -> int:
        """Read back and release the messages now due, as many as there is room for;
        how many ids it took."""
        now = self._clock()
        room = min(self._room(), RELEASE_BATCH)
        if room < 1 or now < self._retry_at:
            return 0
        due = self.ids.pop_due(now, int(room))
        if not due:
            return 0
        self._reading = {message_id for _, message_id in due}
        try:
            stored = await self._read([message_id for _, message_id in due])
        except StoreError as exc:
            for when, message_id in due:
                if message_id not in self._withdrawn:
                    self.ids.push(when, message_id)
            self._retry_at = self._clock() + RELEASE_RETRY
            log.warning("scheduled messages not read back; trying again", error=str(exc))
            return 0
        finally:
            withdrawn, self._withdrawn, self._reading = self._withdrawn, set(), set()
        messages = []
        for row in stored:
            if row.state is not MessageState.ACCEPTED or row.attempts or row.id in withdrawn:
                continue  # made final, held, or taken out, since it was scheduled
            message = outbound_from_stored(row)
            message.not_before = None  # its time has come
            messages.append(message)
        if messages:
            await self._release(messages)
        return len(due)
