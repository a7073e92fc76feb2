"""How an airtime advance moves money: a charging adapter the handler calls in its step.

An advance is two facts that must agree: the ``advance`` row (what is owed) and the
subscriber's balance (what was credited, what was taken back). The handler runs inside
the step's SQLite transaction, where no I/O is allowed, so an adapter can only do what
that transaction can hold:

* :class:`LedgerCharging` (``charging: ledger``, the default) keeps balances in the
  ``balance_ledger`` table. Credit, debit and the advance commit together or not at all,
  so they can never disagree. For tests, demos and operators whose balance lives here.
* :class:`HttpCharging` (``charging: {http: {url: ...}}``) is for a real charging
  system. It cannot call it from the transaction, so it writes an *outbox* row instead
  (an ``event`` of kind ``charge_request``: operation, amount, a reference that is also
  the idempotency key) in the same transaction as the advance. A separate trio task,
  :func:`smppgw.scenarios.charging_http.run_http_charging`, posts pending rows and marks
  them done. What that buys and costs, honestly: the request is never lost and never
  applied twice by a charging system that honours the idempotency key; but the reply
  ("you got 10000") goes out before the charging system has acted (seconds later, or
  later still while it is down), and a request it refuses for good is compensated after
  the fact (a refused credit cancels the advance, a refused debit re-opens the debt)
  without a second message to the subscriber; those are logged for the operator.

Results say what happened *now*: ``amount`` is what was (ledger) or will be (outbox)
moved, ``pending`` is true when it is only queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from smppgw.store.airtime import ledger_credit, ledger_debit, queue_charge_request

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "ChargeResult",
    "ChargingAdapter",
    "ChargingSettings",
    "HttpCharging",
    "HttpChargingSettings",
    "HttpTarget",
    "LedgerCharging",
    "make_charging",
]


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """``amount`` moved (or queued, ``pending``); ``balance_after`` when known."""

    ok: bool
    amount: int
    balance_after: int | None = None
    pending: bool = False


class ChargingAdapter(Protocol):
    """Moves money for the airtime handler, inside the step's transaction (``conn``).

    ``ref`` identifies the operation for good (the charging system's idempotency key);
    ``advance_id`` lets a late refusal be compensated on the right advance.
    """

    def credit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult: ...

    def debit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult:
        """Take up to ``amount``; ``result.amount`` is what was taken (never more than
        the balance where the adapter knows it)."""
        ...

    def note_topup(
        self, conn: sqlite3.Connection, msisdn: str, amount: int, ref: str, *, now: float
    ) -> None:
        """A top-up the operator reported. Only a ledger that holds the balance itself
        records it; a real charging system already has it."""
        ...


class LedgerCharging:
    """Balances in ``balance_ledger``, in the step's transaction (see module docstring)."""

    def credit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult:
        after = ledger_credit(conn, msisdn, amount, "advance", ref, now)
        return ChargeResult(True, amount, after)

    def debit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult:
        taken, after = ledger_debit(conn, msisdn, amount, "recovery", ref, now)
        return ChargeResult(taken > 0, taken, after)

    def note_topup(
        self, conn: sqlite3.Connection, msisdn: str, amount: int, ref: str, *, now: float
    ) -> None:
        ledger_credit(conn, msisdn, amount, "topup", ref, now)


class HttpCharging:
    """The in-transaction half of HTTP charging: it queues, the task posts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _queue(
        self,
        conn: sqlite3.Connection,
        op: str,
        msisdn: str,
        amount: int,
        ref: str,
        advance_id: int | None,
        now: float,
    ) -> ChargeResult:
        queue_charge_request(
            conn,
            msisdn=msisdn,
            op=op,
            amount=amount,
            ref=ref,
            reason="advance" if op == "credit" else "recovery",
            advance_id=advance_id,
            now=now,
            url=self.url,
        )
        return ChargeResult(True, amount, None, pending=True)

    def credit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult:
        return self._queue(conn, "credit", msisdn, amount, ref, advance_id, now)

    def debit(
        self,
        conn: sqlite3.Connection,
        msisdn: str,
        amount: int,
        ref: str,
        *,
        advance_id: int | None = None,
        now: float,
    ) -> ChargeResult:
        return self._queue(conn, "debit", msisdn, amount, ref, advance_id, now)

    def note_topup(
        self, conn: sqlite3.Connection, msisdn: str, amount: int, ref: str, *, now: float
    ) -> None:
        return None


# -- settings --------------------------------------------------------------------------


class HttpTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Where the HTTP charging task posts this scenario's requests.
    url: str = Field(pattern=r"^https?://[^/\s]+")


class HttpChargingSettings(BaseModel):
    """``charging: {http: {url: "http://charging.local/api/charge"}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http: HttpTarget


#: The ``charging:`` setting of the airtime scenario.
ChargingSettings = Literal["ledger"] | HttpChargingSettings


def make_charging(settings: ChargingSettings) -> ChargingAdapter:
    """The adapter the setting names."""
    if isinstance(settings, HttpChargingSettings):
        return HttpCharging(settings.http.url)
    return LedgerCharging()
