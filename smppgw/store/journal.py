"""The SQL of the MT journal (inbound and receipts are in ``inbound.py``, reading
messages back in ``message_reads.py``).

Plain synchronous functions of a ``sqlite3.Connection``: the write functions run inside
the writer's batch transaction (see ``writer.py``), the read functions on a reader
connection. They check arguments and keep the data consistent (a final state is final,
a dedup key is journaled once) but take no business decision: which state a receipt
means, when to retry, whom to charge is the caller's to say.

Hot path note: :func:`accept` is called for every MT message. It builds one tuple per
message and does one ``executemany`` per work item, which is what keeps the per-message
cost of group commit at a few microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from smppgw.store.bulk import insert_rows
from smppgw.store.opt_out import opted_out, refuses
from smppgw.store.quota import paying_orders, reserve, settle
from smppgw.store.quota_batch import reserve_run
from smppgw.store.records import (
    FINAL_STATES,
    MessageState,
    NewMessage,
    QuotaRefusal,
    RefusalReason,
    Reservation,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = [
    "JournalState",
    "accept",
    "accept_many",
    "admit",
    "admit_many",
    "cancel_queued",
    "ms",
    "opt_ms",
    "release_held",
    "replace_queued",
    "sec",
]

_UNFINISHED = ("accepted", "submitted")


def ms(seconds: float) -> int:
    """Epoch seconds -> the integer milliseconds the tables hold."""
    return round(seconds * 1000)


def opt_ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def sec(millis: int | None) -> float | None:
    return None if millis is None else millis / 1000


@dataclass(slots=True)
class JournalState:
    """Writer-thread state: the next message id to hand out.

    Ids are allocated by the writer (not by SQLite) so that a batch insert can return
    them without a query per row; an id of a rolled-back item is simply never used.
    """

    next_message_id: int = 1

    def load(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM mt_message").fetchone()
        self.next_message_id = int(row[0])


# ------------------------------------------------------------------ MT messages

_INSERT_MESSAGE = (
    "INSERT INTO mt_message (id, partner, source_addr, source_ton, source_npi,"
    " destination_addr, dest_ton, dest_npi, data_coding, esm_class, registered_delivery,"
    " priority, body, part_count, state, smsc, order_id, reservation_id,"
    " created_at, updated_at, next_attempt_at, expires_at, tlvs, protocol_id, user_ref)"
)
_INSERT_PART = "INSERT INTO mt_part (message_id, part_no, payload)"


def accept(
    conn: sqlite3.Connection, state: JournalState, msgs: Sequence[NewMessage], now: float
) -> list[int]:
    """Journal MT messages as ``accepted``; returns their ids, in order."""
    return accept_many(state, conn, [(msgs, now)])[0]


def admit(
    conn: sqlite3.Connection,
    state: JournalState,
    msgs: Sequence[NewMessage],
    quota_parts: Sequence[int | None],
    now: float,
    payers: Sequence[Sequence[str]] | None = None,
) -> list[int | QuotaRefusal]:
    """Reserve quota and journal each message in one transaction, message by message.

    ``quota_parts[i]`` is how many parts message ``i`` must find on its partner's active
    orders (None: no quota applies). A message whose reservation is refused is not
    journaled: its slot holds the :class:`QuotaRefusal`; the others get their ids. The
    reservation and the journal row commit together, so a crash can neither charge a
    message that was never accepted nor accept one that was never charged.

    ``payers[i]``, when given, is whose orders may pay for message ``i``, in order (a
    sub-partner, then its parent...): the first of them with an active order pays or
    refuses; one with no order at all passes to the next.

    A message with an ``opt_out_key`` whose number opted out of its payers' marketing
    (or every partner's) is refused first (``RefusalReason.OPTED_OUT``): nothing is
    reserved or journaled for it.
    """
    if any(m.opt_out_key for m in msgs):
        blocked = _opted_out(conn, msgs, payers)
        if blocked:
            return _admit_except(conn, state, msgs, quota_parts, now, payers, blocked)
    out: list[int | QuotaRefusal] = []
    accepted: list[tuple[NewMessage, int | None, int | None]] = []
    slots: list[int] = []
    known_orders: dict[str, list[int]] = {}
    at_once = _reserve_at_once(conn, msgs, quota_parts, now, payers, known_orders)
    for i, (msg, parts) in enumerate(zip(msgs, quota_parts, strict=True)):
        order_id, reservation_id = msg.order_id, msg.reservation_id
        early = at_once.get(i)
        if early is not None:
            order_id, reservation_id = early.order_id, early.reservation_id
        elif parts is not None:
            chain = payers[i] if payers is not None else (msg.partner,)
            held: Reservation | QuotaRefusal = QuotaRefusal(RefusalReason.NO_ORDER)
            for payer in chain:
                held = reserve(conn, payer, parts, now, known_orders=known_orders)
                if not (isinstance(held, QuotaRefusal) and held.reason is RefusalReason.NO_ORDER):
                    break
            if isinstance(held, QuotaRefusal):
                out.append(held)
                continue
            order_id, reservation_id = held.order_id, held.reservation_id
        slots.append(len(out))
        out.append(0)  # its id, below
        accepted.append((msg, order_id, reservation_id))
    # One insert for the whole batch; ids in message order, as one by one would give.
    [ids] = _insert(state, conn, [(accepted, now)])
    for slot, message_id in zip(slots, ids, strict=True):
        out[slot] = message_id
    return out


def _opted_out(
    conn: sqlite3.Connection,
    msgs: Sequence[NewMessage],
    payers: Sequence[Sequence[str]] | None,
) -> set[int]:
    """Indexes of the messages whose number opted out of their payers' marketing."""
    lists = opted_out(conn, (m.opt_out_key for m in msgs if m.opt_out_key))
    if not lists:
        return set()
    return {
        i
        for i, msg in enumerate(msgs)
        if msg.opt_out_key
        and refuses(lists.get(msg.opt_out_key), payers[i] if payers is not None else (msg.partner,))
    }


def _admit_except(
    conn: sqlite3.Connection,
    state: JournalState,
    msgs: Sequence[NewMessage],
    quota_parts: Sequence[int | None],
    now: float,
    payers: Sequence[Sequence[str]] | None,
    blocked: set[int],
) -> list[int | QuotaRefusal]:
    """:func:`admit` of the messages not in ``blocked``; the blocked ones refused."""
    keep = [i for i in range(len(msgs)) if i not in blocked]
    out: list[int | QuotaRefusal] = [QuotaRefusal(RefusalReason.OPTED_OUT)] * len(msgs)
    if not keep:
        return out
    results = admit(
        conn,
        state,
        [replace(msgs[i], opt_out_key=None) for i in keep],  # checked: not again
        [quota_parts[i] for i in keep],
        now,
        None if payers is None else [payers[i] for i in keep],
    )
    for i, result in zip(keep, results, strict=True):
        out[i] = result
    return out


def _reserve_at_once(
    conn: sqlite3.Connection,
    msgs: Sequence[NewMessage],
    quota_parts: Sequence[int | None],
    now: float,
    payers: Sequence[Sequence[str]] | None,
    known_orders: dict[str, list[int]],
) -> dict[int, Reservation]:
    """The reservations of the batch's metered messages, one update per payer chain
    when that chain's messages fit whole on the order the first of them would get (the
    batches of a partner's sessions, usually); the others are left to :func:`admit`,
    message by message. Only when no two chains share a payer: then no order is drawn on
    by two chains, and the outcome is the one message by message would have."""
    by_chain: dict[tuple[str, ...], list[int]] = {}
    for i, parts in enumerate(quota_parts):
        if parts is None:
            continue
        if parts <= 0:
            return {}  # reserve() refuses it, message by message
        chain = tuple(payers[i]) if payers is not None else (msgs[i].partner,)
        by_chain.setdefault(chain, []).append(i)
    payers_seen: set[str] = set()
    for chain in by_chain:
        if payers_seen.intersection(chain):
            return {}
        payers_seen.update(chain)
    out: dict[int, Reservation] = {}
    for chain, indexes in by_chain.items():
        if len(indexes) < 2:
            continue
        for payer in chain:
            orders = paying_orders(conn, payer, now, known_orders=known_orders)
            if orders:
                wanted = [quota_parts[i] or 0 for i in indexes]
                run = reserve_run(conn, orders[0], wanted, ms(now))
                if run is not None:
                    out.update(zip(indexes, run, strict=True))
                break
    return out


def admit_many(
    state: JournalState,
    conn: sqlite3.Connection,
    payloads: list[
        tuple[Sequence[NewMessage], Sequence[int | None], Sequence[Sequence[str]] | None, float]
    ],
) -> list[list[int | QuotaRefusal]]:
    """:func:`admit` for several callers' batches at once (the writer's merge function
    for admission; bind ``state`` once): one reservation pass and one insert for the
    sessions that submitted during the previous commit. Their messages are taken in the
    order the batches came, and journaled at the first batch's time."""
    msgs: list[NewMessage] = []
    parts: list[int | None] = []
    chains: list[Sequence[str]] = []
    bounds: list[tuple[int, int]] = []
    for batch, batch_parts, batch_payers, _ in payloads:
        start = len(msgs)
        msgs.extend(batch)
        parts.extend(batch_parts)
        chains.extend(batch_payers if batch_payers is not None else [(m.partner,) for m in batch])
        bounds.append((start, len(msgs)))
    results = admit(conn, state, msgs, parts, payloads[0][3], chains)
    return [results[start:end] for start, end in bounds]


def accept_many(
    state: JournalState,
    conn: sqlite3.Connection,
    payloads: list[tuple[Sequence[NewMessage], float]],
) -> list[list[int]]:
    """:func:`accept` for several callers' batches at once: one ``executemany`` in all.

    This is the writer's merge function for MT journaling (bind ``state`` once).
    """
    groups = [([(m, m.order_id, m.reservation_id) for m in msgs], now) for msgs, now in payloads]
    return _insert(state, conn, groups)


_Row = tuple[NewMessage, int | None, int | None]


def _insert(
    state: JournalState,
    conn: sqlite3.Connection,
    groups: Sequence[tuple[Sequence[_Row], float]],
) -> list[list[int]]:
    """Insert ``(message, order_id, reservation_id)`` rows as ``accepted`` (or ``held``)
    with ids from ``state``, in order, all groups in one ``executemany``; the ids of
    each group."""
    rows: list[tuple[object, ...]] = []
    parts: list[tuple[int, int, bytes]] = []
    out: list[list[int]] = []
    next_id = state.next_message_id
    for items, now in groups:
        t = round(now * 1000)
        first = next_id
        for m, order_id, reservation_id in items:
            rows.append(
                (
                    next_id,
                    m.partner,
                    m.source_addr,
                    m.source_ton,
                    m.source_npi,
                    m.destination_addr,
                    m.dest_ton,
                    m.dest_npi,
                    m.data_coding,
                    m.esm_class,
                    m.registered_delivery,
                    m.priority,
                    m.body,
                    len(m.parts) or 1,
                    "held" if m.held else "accepted",
                    m.smsc,
                    order_id,
                    reservation_id,
                    t,
                    t,
                    None if m.next_attempt_at is None else round(m.next_attempt_at * 1000),
                    None if m.expires_at is None else round(m.expires_at * 1000),
                    m.tlvs or None,
                    m.protocol_id,
                    m.user_ref,
                )
            )
            if m.parts:
                parts.extend((next_id, n, payload) for n, payload in enumerate(m.parts))
            next_id += 1
        out.append(list(range(first, next_id)))
    # Allocated before the insert: an id of a rolled-back attempt is never reused.
    state.next_message_id = next_id
    insert_rows(conn, _INSERT_MESSAGE, rows)
    insert_rows(conn, _INSERT_PART, parts)
    return out


def release_held(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> list[int]:
    """Approved by moderation: ``held`` -> ``accepted``; returns the ids that were held."""
    t = ms(now)
    out: list[int] = []
    for message_id in ids:
        row = conn.execute(
            "UPDATE mt_message SET state = 'accepted', updated_at = ?"
            " WHERE id = ? AND state = 'held' RETURNING id",
            (t, message_id),
        ).fetchone()
        if row is not None:
            out.append(int(row[0]))
    return out


# ------------------------------------------------------------------ partner commands


def cancel_queued(
    conn: sqlite3.Connection, message_id: int, from_state: MessageState, error: str, now: float
) -> bool:
    """A partner's ``cancel_sm``: ``from_state`` -> ``rejected`` with ``error``, and its
    quota reservation released (nothing charged). False when the message is no longer in
    ``from_state`` (a moderator or a carrier got there first): nothing changes.

    Conditional on the state the caller saw, unlike :func:`mark_final`, so a cancel of a
    held message that a moderator approved meanwhile cannot finalise a queued one.
    """
    if from_state not in (MessageState.ACCEPTED, MessageState.HELD):
        raise ValueError(f"only an accepted or held message can be cancelled, not {from_state!r}")
    row = conn.execute(
        "UPDATE mt_message SET state = 'rejected', error = ?, updated_at = ?,"
        " next_attempt_at = NULL WHERE id = ? AND state = ? RETURNING reservation_id",
        (error, ms(now), message_id, from_state.value),
    ).fetchone()
    if row is None:
        return False
    if row[0] is not None:
        settle(conn, int(row[0]), 0, now)
    return True


def cancel_queued_many(
    conn: sqlite3.Connection,
    items: Sequence[tuple[int, MessageState]],
    error: str,
    now: float,
) -> list[bool]:
    """:func:`cancel_queued` of each ``(message id, state seen)`` in one transaction (a
    cancel by addresses); per item: cancelled?"""
    return [cancel_queued(conn, message_id, state, error, now) for message_id, state in items]


def replace_queued(
    conn: sqlite3.Connection,
    message_id: int,
    from_state: MessageState,
    new: NewMessage,
    quota_parts: int | None,
    payers: Sequence[str],
    now: float,
) -> bool | QuotaRefusal:
    """A partner's ``replace_sm``: the body, parts, receipt request and times of a message
    still in ``from_state`` become ``new``'s; its state becomes ``held`` when ``new.held``.

    Quota: when the message holds a reservation and the new text takes a different
    number of parts (``quota_parts``), the old reservation is released and a new one
    taken from ``payers`` (as :func:`admit` does), under a savepoint: if no order can pay,
    nothing changes and the :class:`QuotaRefusal` is returned. False when the message is
    no longer in ``from_state``.
    """
    if from_state not in (MessageState.ACCEPTED, MessageState.HELD):
        raise ValueError(f"only an accepted or held message can be replaced, not {from_state!r}")
    row = conn.execute(
        "SELECT m.state, m.reservation_id, m.order_id, q.parts FROM mt_message m"
        " LEFT JOIN quota_ledger q ON q.id = m.reservation_id WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    if row is None or row[0] != from_state.value:
        return False
    reservation_id = None if row[1] is None else int(row[1])
    order_id = None if row[2] is None else int(row[2])
    if quota_parts is not None and reservation_id is not None and row[3] != quota_parts:
        conn.execute("SAVEPOINT replace_quota")
        settle(conn, reservation_id, 0, now)
        held: Reservation | QuotaRefusal = QuotaRefusal(RefusalReason.NO_ORDER)
        for payer in payers:
            held = reserve(conn, payer, quota_parts, now)
            if not (isinstance(held, QuotaRefusal) and held.reason is RefusalReason.NO_ORDER):
                break
        if isinstance(held, QuotaRefusal):
            conn.execute("ROLLBACK TO replace_quota")
            conn.execute("RELEASE replace_quota")
            return held
        conn.execute("RELEASE replace_quota")
        reservation_id, order_id = held.reservation_id, held.order_id
    conn.execute(
        "UPDATE mt_message SET body = ?, part_count = ?, registered_delivery = ?,"
        " expires_at = ?, next_attempt_at = ?, state = ?, reservation_id = ?, order_id = ?,"
        " updated_at = ? WHERE id = ?",
        (
            new.body,
            len(new.parts) or 1,
            new.registered_delivery,
            opt_ms(new.expires_at),
            opt_ms(new.next_attempt_at),
            "held" if new.held else from_state.value,
            reservation_id,
            order_id,
            ms(now),
            message_id,
        ),
    )
    conn.execute("DELETE FROM mt_part WHERE message_id = ?", (message_id,))
    if new.parts:
        insert_rows(conn, _INSERT_PART, [(message_id, n, p) for n, p in enumerate(new.parts)])
    return True


# Every state is final, unfinished (sent or resent by recovery), or held for moderation.
assert set(_UNFINISHED) == (
    {s.value for s in MessageState} - {s.value for s in FINAL_STATES} - {MessageState.HELD.value}
)
