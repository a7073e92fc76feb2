"""One scenario step, committed whole: its effects, its replies, its log, its mark.

Exactly once (issue 6) rests here. The carrier may deliver an MO twice and the daemon
may die at any instruction; what must never happen is points credited twice, or credited
without the reply, or a reply without the credit. So everything a step does is ONE
transaction in the writer thread:

1. skip if the inbound row is already processed (a redelivery, a replay at start-up) or
   the event key is already known (an event fed twice);
2. run the step's function (the handler, given the connection) under its own savepoint:
   if it raises, its half-done changes are rolled back and the step is recorded with the
   outcome its error handler gives (the MO is answered and not retried forever);
3. journal the replies as MT messages (they go out like any accepted message; a crash
   after commit recovers them from the journal);
4. write the MO/MT log rows and mark the inbound row (or the event) processed.

The store decides nothing: what to write comes from the caller's function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.store.inbound import mark_inbound_processed
from smppgw.store.journal import JournalState, accept, ms

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

    from smppgw.store.records import NewMessage

__all__ = ["EventIntake", "LogEntry", "StepResult", "StepWrite", "commit_step"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """A row of the MO/MT log. For an MT, ``reply_index`` is its place in
    :attr:`StepWrite.messages` (the journal id is filled in here)."""

    direction: str  # "mo" | "mt"
    msisdn: str
    body: str
    short_code: str | None = None
    scenario: str | None = None
    outcome: str | None = None
    member_id: str | None = None
    correlation: str | None = None
    reply_index: int | None = None


@dataclass(frozen=True, slots=True)
class StepWrite:
    """What a step wants committed beside its own SQL effects."""

    messages: Sequence[NewMessage] = ()
    log: Sequence[LogEntry] = ()
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class EventIntake:
    """An event from the operator's systems, recorded with the step that handles it.

    ``key`` deduplicates: the same key fed twice is handled once.
    """

    kind: str
    subject: str | None
    payload: dict[str, object] = field(default_factory=dict)
    key: str | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    """A committed step: its outcome and the journal ids of its replies."""

    outcome: str
    message_ids: list[int]
    event_id: int | None = None


def _already_processed(conn: sqlite3.Connection, inbound_id: int) -> bool:
    row = conn.execute("SELECT processed_at FROM inbound WHERE id = ?", (inbound_id,)).fetchone()
    if row is None:
        raise KeyError(f"no inbound row {inbound_id}")
    return row[0] is not None


def _record_event(conn: sqlite3.Connection, event: EventIntake, now: float) -> int | None:
    """The event's id, or None if its key was seen before."""
    cur = conn.execute(
        "INSERT INTO event (kind, subject, payload, created_at, event_key) VALUES (?,?,?,?,?)"
        " ON CONFLICT (event_key) WHERE event_key IS NOT NULL DO NOTHING",
        (event.kind, event.subject, json.dumps(event.payload), ms(now), event.key),
    )
    if cur.rowcount != 1 or cur.lastrowid is None:
        return None
    return int(cur.lastrowid)


def commit_step(
    conn: sqlite3.Connection,
    *,
    state: JournalState,
    step: Callable[[sqlite3.Connection], StepWrite],
    on_error: Callable[[BaseException], StepWrite],
    now: float,
    inbound_id: int | None = None,
    also_inbound: Sequence[int] = (),
    event: EventIntake | None = None,
) -> StepResult | None:
    """Run and commit one scenario step (see the module docstring); None if it was
    already done (a duplicate delivery or event key). ``also_inbound``: more rows the
    step answers for (the other parts of an MO in parts), marked processed with it."""
    if inbound_id is not None and _already_processed(conn, inbound_id):
        return None
    event_id = None
    if event is not None:
        event_id = _record_event(conn, event, now)
        if event_id is None:
            return None
    conn.execute("SAVEPOINT scenario_step")
    try:
        write = step(conn)
    except Exception as exc:  # the handler's fault: undo its half, answer, move on
        conn.execute("ROLLBACK TO scenario_step")
        write = on_error(exc)
    conn.execute("RELEASE scenario_step")
    ids = accept(conn, state, write.messages, now) if write.messages else []
    t = ms(now)
    rows = []
    for entry in write.log:
        message_id = None if entry.reply_index is None else ids[entry.reply_index]
        rows.append(
            (
                entry.direction,
                entry.msisdn,
                entry.short_code,
                entry.body,
                entry.scenario,
                message_id,
                inbound_id if entry.direction == "mo" else None,
                t,
                entry.outcome,
                entry.member_id,
                entry.correlation,
            )
        )
    conn.executemany(
        "INSERT INTO message_log (direction, msisdn, short_code, body, scenario, message_id,"
        " inbound_id, created_at, outcome, member_id, correlation)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    answered = list(also_inbound) if inbound_id is None else [inbound_id, *also_inbound]
    if answered:
        mark_inbound_processed(conn, answered, now)
    if event_id is not None:
        conn.execute("UPDATE event SET processed_at = ? WHERE id = ?", (t, event_id))
    return StepResult(write.outcome, ids, event_id)
