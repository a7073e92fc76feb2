"""Partners as the gateway runs them: the config's, overridden by accounts in the store.

Why the store too: operators add a partner, change its password or disable it from
the CLI while the daemon runs, without editing the YAML and sending SIGHUP. Those
changes are rows of ``partner_account`` (``smppgw.store.admin_queries``); the config
file stays what it was, and :func:`merge_partners` computes what the gateway applies:

- a config partner with an account row: the row's ``password_hash`` and ``enabled``
  win where they are set (NULL keeps the config's value); its stored ``settings`` are
  ignored, since the config defines that partner;
- an account with ``settings`` and no config partner: a partner added from the CLI;
- an account with neither: nothing (an override of a partner the config dropped).

Every merged partner goes through ``PartnerSettings.model_validate`` and the rules
across partners (``partner_problems``), so a stored partner that is not valid (or no
longer, after a config change) is refused with a reason instead of reaching the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from smppgw.app.partner_models import PartnerSettings, partner_problems
from smppgw.store.admin_queries import partner_accounts

if TYPE_CHECKING:
    from collections.abc import Iterable

    from smppgw.store import Store
    from smppgw.store.admin_queries import PartnerAccount

__all__ = [
    "InvalidPartnerAccount",
    "Refusal",
    "load_partners",
    "merge_partners",
    "partner_origin",
]

log = structlog.get_logger("smppgw.partners")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A stored account that could not be applied, and why."""

    system_id: str
    reason: str


class InvalidPartnerAccount(ValueError):
    """A stored account would make an invalid partner (strict :func:`merge_partners`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"partner {refusal.system_id!r}: {refusal.reason}")
        self.refusal = refusal


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def _apply(base: dict[str, Any], account: PartnerAccount) -> dict[str, Any]:
    data = dict(base)
    data["system_id"] = account.system_id
    if account.password_hash is not None:
        data["password_hash"] = account.password_hash
    if account.enabled is not None:
        data["enabled"] = account.enabled
    return data


def merge_partners(
    config_partners: Iterable[PartnerSettings],
    accounts: Iterable[PartnerAccount],
    *,
    refused: list[Refusal] | None = None,
) -> tuple[PartnerSettings, ...]:
    """The partners to run: config order first, then CLI-added ones by system_id.

    Args:
        refused: None (strict): the first bad account raises
            :class:`InvalidPartnerAccount`; the admin commands use it to refuse a change
            before it is committed. A list (lenient): a bad account is left out (a config
            partner keeps its config values) and its :class:`Refusal` appended; the
            daemon uses it so one bad row cannot keep it from starting.
    """
    config = tuple(config_partners)
    by_id = {a.system_id: a for a in accounts}
    known = {p.system_id for p in config}
    merged: list[PartnerSettings] = []
    from_store: set[str] = set()

    def refuse(system_id: str, reason: str) -> None:
        refusal = Refusal(system_id, reason)
        if refused is None:
            raise InvalidPartnerAccount(refusal)
        refused.append(refusal)

    for partner in config:
        account = by_id.get(partner.system_id)
        if account is None or (account.password_hash is None and account.enabled is None):
            merged.append(partner)
            continue
        try:
            merged.append(
                PartnerSettings.model_validate(_apply(partner.model_dump(mode="json"), account))
            )
        except ValidationError as exc:
            refuse(partner.system_id, _reason(exc))
            merged.append(partner)
    for system_id in sorted(by_id.keys() - known):
        account = by_id[system_id]
        if account.settings is None:
            continue
        if account.password_hash is None:
            refuse(system_id, "no password_hash: set one with smppgw partner password")
            continue
        try:
            merged.append(PartnerSettings.model_validate(_apply(account.settings, account)))
            from_store.add(system_id)
        except ValidationError as exc:
            refuse(system_id, _reason(exc))
    return _cross_checked(merged, from_store, refuse)


def _cross_checked(
    merged: list[PartnerSettings], from_store: set[str], refuse: Any
) -> tuple[PartnerSettings, ...]:
    """Drop CLI-added partners that break a rule across partners (a short code another
    owns, a missing parent), one at a time until none does: config partners passed
    these rules on their own, so a problem always involves a CLI-added one."""
    while True:
        culprit = None
        for location, message in partner_problems(tuple(merged)):
            index = location[1]
            assert isinstance(index, int)
            if merged[index].system_id in from_store:
                culprit = index, message
                break
        if culprit is None:
            return tuple(merged)
        index, message = culprit
        refuse(merged[index].system_id, message)
        from_store.discard(merged[index].system_id)
        del merged[index]


def partner_origin(system_id: str, config_ids: set[str], account: PartnerAccount | None) -> str:
    """``config``, ``config+store`` (overridden) or ``store`` (added from the CLI)."""
    if system_id not in config_ids:
        return "store"
    if account is not None and (account.password_hash is not None or account.enabled is not None):
        return "config+store"
    return "config"


async def load_partners(
    store: Store, config_partners: Iterable[PartnerSettings]
) -> tuple[PartnerSettings, ...]:
    """The partners to run now (lenient merge; each refused account logged as an error).

    For the daemon: at start before the partner server is built, on SIGHUP with the new
    config's partners, and after each admin change (``register_record_commands``).
    """
    accounts = await store.read(partner_accounts)
    refused: list[Refusal] = []
    partners = merge_partners(config_partners, accounts, refused=refused)
    for refusal in refused:
        log.error(
            "stored partner account refused", system_id=refusal.system_id, reason=refusal.reason
        )
    return partners
