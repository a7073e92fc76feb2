"""A handler written the way an operator would write one (imported by path in tests):
it answers events, so the event intake can be tested without the built-in handlers."""

from __future__ import annotations

from smppgw.scenarios.handler import Context, Event, Handler, Mo, Outcome


class TopupNotice(Handler):
    """``BAL`` answers the sum of the top-ups seen; a ``topup`` event thanks the
    subscriber. State lives in the event table the engine keeps anyway."""

    commands = frozenset({"balance"})
    events = frozenset({"topup"})
    default_replies = {
        "balance": "Top-ups so far: {total}",
        "thanks": "Thank you for your top-up of {amount}.",
    }

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        row = ctx.conn.execute(
            "SELECT COALESCE(SUM(json_extract(payload, '$.amount')), 0) FROM event"
            " WHERE kind = 'topup' AND subject = ?",
            (mo.msisdn,),
        ).fetchone()
        return Outcome("balance", {"total": int(row[0])})

    def on_event(self, ctx: Context, event: Event) -> Outcome | None:
        return Outcome("thanks", {"amount": event.data.get("amount", 0)})
