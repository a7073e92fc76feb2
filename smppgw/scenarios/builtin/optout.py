"""Opt-out: a subscriber refuses marketing messages (``TC``), or takes them back.

DOMAIN (seed 002): marketing messages must honour opt-out; transactional ones (OTPs,
notifications) go regardless. ``TC`` to one of the scenario's short codes puts the
sender's number on the opt-out list (``store/opt_out.py``); from then on admission
refuses marketing partners' messages to it (``ESME_RX_P_APPN``). ``NHANQC`` takes it off
again. The change commits with the reply (the engine's step transaction): a
subscriber told "done" is on the list.

Settings::

    settings:
      partner: null        # whose marketing: null, every partner's; or one system_id
      country_code: "84"   # an MO from a national number (leading 0) is written with it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from smppgw.gateway.opt_out import opt_out_key
from smppgw.scenarios.handler import Context, Handler, Mo, Outcome
from smppgw.store.opt_out import ALL_PARTNERS, add_opt_outs, remove_opt_outs

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["OptOutHandler", "OptOutSettings", "partner_scopes"]

#: International TON: an MO's sender is written as the network gives it.
_INTERNATIONAL = 1


class OptOutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str | None = Field(default=None, min_length=1)
    country_code: str = Field(default="84", pattern=r"^[1-9][0-9]{0,3}$")


def partner_scopes(scenarios: Iterable[Any]) -> list[tuple[str, str]]:
    """``(scenario, partner)`` of every loaded opt-out scenario that lists numbers for one
    partner's marketing only (``settings.partner``): the daemon warns of a partner it
    does not know (a typo would list subscribers for nobody)."""
    return [
        (scenario.name, scenario.handler.scope)
        for scenario in scenarios
        if isinstance(scenario.handler, OptOutHandler) and scenario.handler.scope != ALL_PARTNERS
    ]


class OptOutHandler(Handler):
    """See the module docstring."""

    Settings = OptOutSettings
    commands = frozenset({"stop", "start"})
    default_replies = {
        "opted_out": (
            "Ban da tu choi nhan tin quang cao. Soan {start_kw} gui {short_code} de nhan lai."
        ),
        "already_opted_out": "So {msisdn} da tu choi nhan tin quang cao truoc do.",
        "opted_in": "Ban se nhan lai tin quang cao. Soan {stop_kw} gui {short_code} de tu choi.",
        "not_opted_out": "So {msisdn} khong co trong danh sach tu choi nhan tin quang cao.",
    }

    def __init__(self, scenario: Any, settings: OptOutSettings) -> None:
        super().__init__(scenario, settings)
        self.scope = settings.partner or ALL_PARTNERS
        self.keywords = {
            command: (spec.keywords[0] if spec is not None else command.upper())
            for command in ("stop", "start")
            for spec in [scenario.commands.get(command)]
        }

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        settings: OptOutSettings = self.settings
        number = opt_out_key(mo.msisdn, _INTERNATIONAL, settings.country_code) or mo.msisdn
        values = {
            "msisdn": mo.msisdn,
            "short_code": mo.short_code,
            "stop_kw": self.keywords["stop"],
            "start_kw": self.keywords["start"],
        }
        if mo.command == "stop":
            source = f"mo:{mo.short_code}"
            added = add_opt_outs(ctx.conn, [(number, self.scope)], source, ctx.now)
            return Outcome("opted_out" if added else "already_opted_out", values)
        removed = remove_opt_outs(ctx.conn, [number], self.scope)
        return Outcome("opted_in" if removed else "not_opted_out", values)
