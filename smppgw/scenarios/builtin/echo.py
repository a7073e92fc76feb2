"""The smallest handler: answers with what was sent. The README's example, and a probe
an operator can put on a test short code to check the MO/MT path end to end."""

from __future__ import annotations

from smppgw.scenarios.handler import Context, Handler, Mo, Outcome

__all__ = ["Echo"]


class Echo(Handler):
    commands = frozenset({"echo"})
    default_replies = {"echoed": "You said: {text}"}

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        return Outcome("echoed", {"text": " ".join(mo.args)})
