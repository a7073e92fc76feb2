"""The SQL of alerts: which alert keys are known, covered keys, and the mails still owed.

An alert is an ``event`` row (kind ``alert``, ``event_key`` the alert's key) written by
``Store.commit_step`` with its SMS. Beside it:

- ``alert_covered`` rows: lower thresholds passed at the same time, recorded so they
  never fire later (written in the alert's own transaction);
- ``alert_mail`` rows, key ``alert-mail:<alert key>:<audience>``: written only after
  that mail went out (or was refused for good). A mail of an alert without its row is
  owed, and :func:`pending_mails` finds it at the next pass, also after a restart.

The store decides nothing: what an alert is and when it is due is ``smppgw.alerts``'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smppgw.store.journal import ms

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable

__all__ = [
    "ALERT_EVENT",
    "COVERED_EVENT",
    "MAIL_EVENT",
    "PendingMail",
    "cover_keys",
    "known_keys",
    "mail_key",
    "pending_mails",
    "record_mail",
]

ALERT_EVENT = "alert"
COVERED_EVENT = "alert_covered"
MAIL_EVENT = "alert_mail"


def mail_key(alert_key: str, audience: str) -> str:
    return f"alert-mail:{alert_key}:{audience}"


@dataclass(frozen=True, slots=True)
class PendingMail:
    """A mail an alert owes: ``mail`` is the rendered message as the payload keeps it."""

    alert_key: str
    audience: str
    to: tuple[str, ...]
    subject: str
    body: str
    created_at: float


def known_keys(conn: sqlite3.Connection, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` already recorded (sent or covered)."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT event_key FROM event WHERE event_key IN ({marks})", chunk
        ).fetchall()
        found.update(str(r[0]) for r in rows)
    return found


def cover_keys(conn: sqlite3.Connection, keys: Iterable[str], covered_by: str, now: float) -> None:
    """Record ``keys`` as covered by the alert ``covered_by`` (no-op for known keys)."""
    t = ms(now)
    conn.executemany(
        "INSERT INTO event (kind, subject, payload, created_at, event_key, processed_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (event_key) WHERE event_key IS NOT NULL DO NOTHING",
        [(COVERED_EVENT, None, json.dumps({"covered_by": covered_by}), t, key, t) for key in keys],
    )


def pending_mails(conn: sqlite3.Connection, limit: int = 100) -> list[PendingMail]:
    """Mails of recorded alerts not yet sent, oldest alert first."""
    rows = conn.execute(
        "SELECT e.event_key, j.value, e.created_at FROM event e,"
        " json_each(e.payload, '$.mails') j"
        " WHERE e.kind = ? AND e.event_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM event m"
        "  WHERE m.event_key = 'alert-mail:' || e.event_key || ':'"
        "   || json_extract(j.value, '$.audience'))"
        " ORDER BY e.id, j.key LIMIT ?",
        (ALERT_EVENT, limit),
    ).fetchall()
    out = []
    for key, value, created_at in rows:
        mail = json.loads(value)
        out.append(
            PendingMail(
                alert_key=str(key),
                audience=str(mail["audience"]),
                to=tuple(str(a) for a in mail["to"]),
                subject=str(mail["subject"]),
                body=str(mail["body"]),
                created_at=int(created_at) / 1000,
            )
        )
    return out


def record_mail(
    conn: sqlite3.Connection, alert_key: str, audience: str, result: str, now: float
) -> bool:
    """The mail went out (or was refused for good, ``result`` says): never again.
    False if it was already recorded."""
    t = ms(now)
    cur = conn.execute(
        "INSERT INTO event (kind, subject, payload, created_at, event_key, processed_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (event_key) WHERE event_key IS NOT NULL DO NOTHING",
        (
            MAIL_EVENT,
            alert_key,
            json.dumps({"audience": audience, "result": result}),
            t,
            mail_key(alert_key, audience),
            t,
        ),
    )
    return cur.rowcount == 1
