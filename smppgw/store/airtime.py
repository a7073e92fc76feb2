"""Airtime advance: subscriber profiles, advances, the built-in balance ledger, and the
outbox of charge requests for an external charging system.

Every function takes the open connection of a scenario step (``Context.conn``) or of a
writer transaction and runs inside it; they decide nothing (the airtime handler and the
charging adapters do). Money is integer minor units (VND has none: ``10000`` is 10,000 d).

Invariants held here rather than by callers' care:

* one outstanding advance per number: the ``advance_one_outstanding`` unique index, whose
  IntegrityError :func:`insert_advance` turns into :class:`AlreadyOutstanding`;
* what is recovered never exceeds what is owed (``amount + fee``):
  :func:`apply_recovery` clamps and says how much it took;
* a ledger debit never takes a balance below zero: :func:`ledger_debit` takes what is
  there (or nothing, when a partial debit is not wanted).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from smppgw.store.journal import ms

__all__ = [
    "CHARGE_REQUEST",
    "OFFER_SENT",
    "Advance",
    "AlreadyOutstanding",
    "ChargeRequest",
    "Profile",
    "apply_recovery",
    "cancel_advance",
    "ensure_profile",
    "finish_charge_request",
    "get_advance",
    "get_profile",
    "insert_advance",
    "last_offer_at",
    "ledger_balance",
    "ledger_credit",
    "ledger_debit",
    "outstanding_advance",
    "pending_charge_requests",
    "queue_charge_request",
    "record_offer",
    "set_flags",
    "set_profile_balance",
    "undo_recovery",
    "void_advance",
]

#: The ``event.kind`` of a charge request waiting for the HTTP charging task.
CHARGE_REQUEST = "charge_request"
#: The ``event.kind`` recording a low-balance offer sent (to space offers out).
OFFER_SENT = "airtime_offer"
#: Event keys of charge requests; "@" cannot start a scenario name, so they never meet
#: the engine's "<scenario>:<key>" keys.
_CHARGE_KEY = "@charge:"


@dataclass(frozen=True, slots=True)
class Profile:
    """What the operator knows of a subscriber (imported) and what they chose (SMS)."""

    msisdn: str
    arpu_3m: int
    balance: int | None
    opted_out: bool
    registered: bool
    paused: bool
    updated_at: float


@dataclass(frozen=True, slots=True)
class Advance:
    id: int
    msisdn: str
    amount: int
    fee: int
    recovered: int
    state: str
    created_at: float
    recovered_at: float | None

    @property
    def owed(self) -> int:
        """What remains to recover: the amount and fee less what was recovered."""
        return self.amount + self.fee - self.recovered


class AlreadyOutstanding(Exception):
    """The number already has an outstanding advance (the unique index said so)."""


# -- profiles --------------------------------------------------------------------------

_PROFILE = "msisdn, arpu_3m, balance, opted_out, advance_registered, advance_paused, updated_at"


def _profile(r: Any) -> Profile:
    return Profile(
        msisdn=str(r[0]),
        arpu_3m=int(r[1]),
        balance=None if r[2] is None else int(r[2]),
        opted_out=bool(r[3]),
        registered=bool(r[4]),
        paused=bool(r[5]),
        updated_at=int(r[6]) / 1000,
    )


def get_profile(conn: sqlite3.Connection, msisdn: str) -> Profile | None:
    row = conn.execute(
        f"SELECT {_PROFILE} FROM subscriber_profile WHERE msisdn = ?", (msisdn,)
    ).fetchone()
    return None if row is None else _profile(row)


def ensure_profile(conn: sqlite3.Connection, msisdn: str, now: float) -> Profile:
    """The profile, created with ARPU 0 (not eligible until an import says more) when
    the number has none: a subscriber may register before the operator's data arrives."""
    conn.execute(
        "INSERT INTO subscriber_profile (msisdn, arpu_3m, updated_at) VALUES (?, 0, ?)"
        " ON CONFLICT (msisdn) DO NOTHING",
        (msisdn, ms(now)),
    )
    profile = get_profile(conn, msisdn)
    assert profile is not None
    return profile


def set_flags(
    conn: sqlite3.Connection,
    msisdn: str,
    now: float,
    *,
    registered: bool | None = None,
    paused: bool | None = None,
    opted_out: bool | None = None,
) -> Profile:
    """Change the subscriber's choices (None leaves a flag as it is); creates the
    profile when missing."""
    ensure_profile(conn, msisdn, now)
    conn.execute(
        "UPDATE subscriber_profile SET"
        " advance_registered = coalesce(?, advance_registered),"
        " advance_paused = coalesce(?, advance_paused),"
        " opted_out = coalesce(?, opted_out), updated_at = ? WHERE msisdn = ?",
        (_opt(registered), _opt(paused), _opt(opted_out), ms(now), msisdn),
    )
    profile = get_profile(conn, msisdn)
    assert profile is not None
    return profile


def _opt(flag: bool | None) -> int | None:
    return None if flag is None else int(flag)


def set_profile_balance(conn: sqlite3.Connection, msisdn: str, balance: int, now: float) -> None:
    """Keep the last balance the operator reported (a low-balance event); no row, no-op."""
    conn.execute(
        "UPDATE subscriber_profile SET balance = ?, updated_at = ? WHERE msisdn = ?",
        (balance, ms(now), msisdn),
    )


# -- advances --------------------------------------------------------------------------

_ADVANCE = "id, msisdn, amount, fee, recovered, state, created_at, recovered_at"


def _advance(r: Any) -> Advance:
    return Advance(
        id=int(r[0]),
        msisdn=str(r[1]),
        amount=int(r[2]),
        fee=int(r[3]),
        recovered=int(r[4]),
        state=str(r[5]),
        created_at=int(r[6]) / 1000,
        recovered_at=None if r[7] is None else int(r[7]) / 1000,
    )


def get_advance(conn: sqlite3.Connection, advance_id: int) -> Advance | None:
    row = conn.execute(f"SELECT {_ADVANCE} FROM advance WHERE id = ?", (advance_id,)).fetchone()
    return None if row is None else _advance(row)


def outstanding_advance(conn: sqlite3.Connection, msisdn: str) -> Advance | None:
    row = conn.execute(
        f"SELECT {_ADVANCE} FROM advance WHERE msisdn = ? AND state = 'outstanding'", (msisdn,)
    ).fetchone()
    return None if row is None else _advance(row)


def insert_advance(
    conn: sqlite3.Connection, msisdn: str, amount: int, fee: int, now: float
) -> Advance:
    """A new outstanding advance.

    Raises:
        AlreadyOutstanding: the number owes one already (checked by the unique index, so
            it holds even for a caller that forgot to look first).
    """
    try:
        cur = conn.execute(
            "INSERT INTO advance (msisdn, amount, fee, state, created_at)"
            " VALUES (?, ?, ?, 'outstanding', ?)",
            (msisdn, amount, fee, ms(now)),
        )
    except sqlite3.IntegrityError as exc:
        # A CHECK (amount > 0...) is the caller's bug, not "already outstanding".
        if "UNIQUE" not in str(exc) or outstanding_advance(conn, msisdn) is None:
            raise
        raise AlreadyOutstanding(msisdn) from None
    advance = get_advance(conn, int(cur.lastrowid or 0))
    assert advance is not None
    return advance


def apply_recovery(
    conn: sqlite3.Connection, advance_id: int, amount: int, now: float
) -> tuple[int, Advance]:
    """Recover up to ``amount`` of an outstanding advance: ``(taken, advance after)``.

    Takes at most what is owed; the advance becomes ``recovered`` when fully paid. A
    settled or cancelled advance takes nothing.
    """
    advance = get_advance(conn, advance_id)
    if advance is None:
        raise KeyError(f"no advance {advance_id}")
    taken = max(0, min(amount, advance.owed)) if advance.state == "outstanding" else 0
    if taken:
        paid = taken == advance.owed
        conn.execute(
            "UPDATE advance SET recovered = recovered + ?,"
            " state = CASE WHEN ? THEN 'recovered' ELSE state END,"
            " recovered_at = CASE WHEN ? THEN ? ELSE recovered_at END WHERE id = ?",
            (taken, paid, paid, ms(now), advance_id),
        )
        advance = get_advance(conn, advance_id)
        assert advance is not None
    return taken, advance


def undo_recovery(conn: sqlite3.Connection, advance_id: int, amount: int) -> bool:
    """Give back ``amount`` recovered that the charging system refused to debit.

    The advance is outstanding again; False (nothing changed) when that would make a
    second outstanding advance for the number (the operator reconciles by hand).
    """
    try:
        cur = conn.execute(
            "UPDATE advance SET recovered = recovered - ?, state = 'outstanding',"
            " recovered_at = NULL WHERE id = ? AND recovered >= ? AND state != 'cancelled'",
            (amount, advance_id, amount),
        )
    except sqlite3.IntegrityError:
        return False
    return cur.rowcount == 1


def cancel_advance(conn: sqlite3.Connection, advance_id: int, now: float) -> bool:
    """Cancel an outstanding advance (its credit never reached the subscriber)."""
    cur = conn.execute(
        "UPDATE advance SET state = 'cancelled', recovered_at = ?"
        " WHERE id = ? AND state = 'outstanding'",
        (ms(now), advance_id),
    )
    return cur.rowcount == 1


def void_advance(conn: sqlite3.Connection, advance_id: int, now: float) -> int:
    """Undo an advance whose credit the charging system refused: it never reached the
    subscriber, so nothing was owed. The advance is cancelled with nothing recovered,
    and the debits queued to recover it are dropped unposted (per-number order means
    none was posted before its credit). Returns how many were dropped."""
    conn.execute(
        "UPDATE advance SET state = 'cancelled', recovered = 0, recovered_at = ?"
        " WHERE id = ? AND state != 'cancelled'",
        (ms(now), advance_id),
    )
    cur = conn.execute(
        "UPDATE event SET processed_at = ?,"
        " payload = json_set(payload, '$.status', 'dropped', '$.detail', 'credit refused')"
        " WHERE kind = ? AND processed_at IS NULL AND json_extract(payload, '$.op') = 'debit'"
        " AND json_extract(payload, '$.advance_id') = ?",
        (ms(now), CHARGE_REQUEST, advance_id),
    )
    return cur.rowcount


# -- built-in balance ledger -----------------------------------------------------------


def ledger_balance(conn: sqlite3.Connection, msisdn: str) -> int:
    """The balance after the number's last ledger row (0 before any)."""
    row = conn.execute(
        "SELECT balance_after FROM balance_ledger WHERE msisdn = ? ORDER BY id DESC LIMIT 1",
        (msisdn,),
    ).fetchone()
    return 0 if row is None else int(row[0])


def _ledger_row(
    conn: sqlite3.Connection,
    msisdn: str,
    delta: int,
    after: int,
    reason: str,
    ref: str | None,
    now: float,
) -> None:
    conn.execute(
        "INSERT INTO balance_ledger (msisdn, delta, balance_after, reason, ref, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (msisdn, delta, after, reason, ref, ms(now)),
    )


def ledger_credit(
    conn: sqlite3.Connection, msisdn: str, amount: int, reason: str, ref: str | None, now: float
) -> int:
    """Add ``amount`` (> 0) to the balance; returns the balance after."""
    if amount <= 0:
        raise ValueError(f"a credit is positive, not {amount}")
    after = ledger_balance(conn, msisdn) + amount
    _ledger_row(conn, msisdn, amount, after, reason, ref, now)
    return after


def ledger_debit(
    conn: sqlite3.Connection,
    msisdn: str,
    amount: int,
    reason: str,
    ref: str | None,
    now: float,
    *,
    partial: bool = True,
) -> tuple[int, int]:
    """Take ``amount`` (> 0) from the balance, never below zero: ``(taken, balance
    after)``. With too little there, take what there is (``partial``) or nothing."""
    if amount <= 0:
        raise ValueError(f"a debit is positive, not {amount}")
    balance = ledger_balance(conn, msisdn)
    taken = min(amount, balance) if partial else (amount if amount <= balance else 0)
    if taken:
        _ledger_row(conn, msisdn, -taken, balance - taken, reason, ref, now)
    return taken, balance - taken


# -- outbox of charge requests (HTTP charging) ------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A credit or debit the HTTP charging task has still to post."""

    id: int
    msisdn: str
    op: str  # "credit" | "debit"
    amount: int
    ref: str
    reason: str
    advance_id: int | None
    attempts: int
    url: str | None = None


def queue_charge_request(
    conn: sqlite3.Connection,
    *,
    msisdn: str,
    op: str,
    amount: int,
    ref: str,
    reason: str,
    advance_id: int | None,
    now: float,
    url: str | None = None,
) -> bool:
    """Record a request to post (in the step's transaction); False if ``ref`` was queued
    before (the ref is also the idempotency key the charging system sees)."""
    payload = {
        "op": op,
        "amount": amount,
        "ref": ref,
        "reason": reason,
        "advance_id": advance_id,
        "attempts": 0,
        "url": url,
    }
    cur = conn.execute(
        "INSERT INTO event (kind, subject, payload, created_at, event_key) VALUES (?,?,?,?,?)"
        " ON CONFLICT (event_key) WHERE event_key IS NOT NULL DO NOTHING",
        (CHARGE_REQUEST, msisdn, json.dumps(payload), ms(now), _CHARGE_KEY + ref),
    )
    return cur.rowcount == 1


def pending_charge_requests(conn: sqlite3.Connection, limit: int = 100) -> list[ChargeRequest]:
    """The oldest requests not yet done, in the order they were made."""
    rows = conn.execute(
        "SELECT id, subject, payload FROM event WHERE processed_at IS NULL AND kind = ?"
        " ORDER BY id LIMIT ?",
        (CHARGE_REQUEST, limit),
    ).fetchall()
    out = []
    for id_, subject, payload in rows:
        p = json.loads(payload)
        out.append(
            ChargeRequest(
                id=int(id_),
                msisdn=str(subject),
                op=str(p["op"]),
                amount=int(p["amount"]),
                ref=str(p["ref"]),
                reason=str(p.get("reason", "")),
                advance_id=p.get("advance_id"),
                attempts=int(p.get("attempts", 0)),
                url=p.get("url"),
            )
        )
    return out


def finish_charge_request(
    conn: sqlite3.Connection,
    request_id: int,
    *,
    status: str,
    detail: str,
    now: float,
    done: bool,
) -> None:
    """Note an attempt at a request: its status and detail in the payload; ``done``
    (accepted or refused for good) takes it out of the pending set."""
    row = conn.execute("SELECT payload FROM event WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        raise KeyError(f"no charge request {request_id}")
    payload = json.loads(row[0])
    payload.update(status=status, detail=detail[:500], attempts=payload.get("attempts", 0) + 1)
    conn.execute(
        "UPDATE event SET payload = ?, processed_at = ? WHERE id = ?",
        (json.dumps(payload), ms(now) if done else None, request_id),
    )


# -- offers ----------------------------------------------------------------------------


def record_offer(conn: sqlite3.Connection, msisdn: str, max_amount: int, now: float) -> None:
    conn.execute(
        "INSERT INTO event (kind, subject, payload, created_at, processed_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (OFFER_SENT, msisdn, json.dumps({"max": max_amount}), ms(now), ms(now)),
    )


def last_offer_at(conn: sqlite3.Connection, msisdn: str) -> float | None:
    """When the number was last offered an advance (None: never)."""
    row = conn.execute(
        "SELECT max(created_at) FROM event WHERE subject = ? AND kind = ?", (msisdn, OFFER_SENT)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0]) / 1000
