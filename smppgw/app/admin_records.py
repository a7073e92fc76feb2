"""Admin socket commands that change orders, partner accounts, members and the opt-out list.

Why through the socket: while the daemon runs, its store has the file's only writer,
so ``smppgw order add`` (and the others) send a request here and the daemon writes in
its own transaction. Without a daemon the CLI registers these very commands on a local
registry over a store it opens itself (``admin_cli``), so both paths run the same code.

Commands (answers carry ``ok``; a refusal is ``{"ok": false, "error": ...}``):

- ``admin.records`` -> the command names (the CLI's probe for a daemon that has them)
- ``order.add`` ``{partner, count, kind, unit_cost, price_minor, expires_at}`` -> ``id``
  (``count`` SMS parts; postpaid: the limit is ``count * unit_cost`` in money)
- ``order.cancel`` ``{id}`` -> ``cancelled`` (False: already ended)
- ``partner.add`` ``{system_id, password_hash, settings}`` (settings: PartnerSettings
  fields), ``partner.password`` ``{system_id, password_hash}``, ``partner.disable`` /
  ``partner.enable`` ``{system_id}``, ``partner.list`` -> ``partners``. Only the hash
  travels: the CLI hashes the password it read from a prompt or stdin.
- ``member.edit`` ``{member_id, set: {name: value}}`` (keys other than name, province
  and msisdn go into the member's ``fields``), ``member.delete`` ``{member_id}``.
- ``optout.add`` / ``optout.remove`` ``{msisdns: [international digits], scope, source,
  everywhere}`` -> ``changed`` (rows added or removed): the opt-out list
  (``store/opt_out.py``); ``scope`` a partner's system_id, empty for every partner's
  marketing; ``everywhere`` removes a number's rows of every scope.

A partner change is checked by merging it with the config's partners and the other
accounts (``partner_accounts.merge_partners``, strict) inside the write: a change that
would make an invalid partner rolls back and is refused. After a committed change the
daemon's ``on_partners_changed`` gets the partners to apply.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from smppgw.app.partner_accounts import Refusal, merge_partners, partner_origin
from smppgw.gateway.auth import check_password_hash
from smppgw.store.admin_queries import (
    PartnerAccount,
    add_order,
    cancel_order,
    partner_accounts,
    save_partner_account,
)
from smppgw.store.members import delete_member, member_by_id, update_member
from smppgw.store.opt_out import ALL_PARTNERS, add_opt_outs, remove_opt_outs
from smppgw.store.records import NewOrder, OrderKind

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from smppgw.app.admin import AdminCommand
    from smppgw.app.partner_models import PartnerSettings
    from smppgw.store import Store

__all__ = ["CommandRegistry", "partner_rows", "register_record_commands"]

log = structlog.get_logger("smppgw.admin")

#: Fields of a partner that ``partner.add`` takes from the request's ``system_id`` and
#: ``password_hash`` (or the enable/disable commands), never from ``settings``.
_OWN_FIELDS = frozenset({"system_id", "password_hash", "enabled"})
_MEMBER_COLUMNS = frozenset({"name", "province", "msisdn"})
#: Numbers one ``optout.add``/``optout.remove`` request takes (the CLI sends a file's
#: numbers in requests of this size: one transaction each, the daemon's writer free
#: for traffic in between).
MAX_OPT_OUT_NUMBERS = 5000


class CommandRegistry(Protocol):
    """What the commands are registered on: the daemon's ``AdminCommands`` or the CLI's
    local stand-in when no daemon runs."""

    def register(self, name: str, command: AdminCommand) -> None: ...


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: a non-empty string is needed")
    return value


def _int(request: dict[str, Any], key: str, *, minimum: int, default: int | None = None) -> int:
    value = request.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key}: a whole number >= {minimum} is needed")
    return value


class _Records:
    def __init__(
        self,
        store: Store,
        config_partners: Callable[[], Sequence[PartnerSettings]],
        on_partners_changed: Callable[[tuple[PartnerSettings, ...]], Awaitable[None]] | None,
        clock: Callable[[], float],
        logger: Any,
    ) -> None:
        self.log = logger
        self.store = store
        self.config_partners = config_partners
        self.on_partners_changed = on_partners_changed
        self.clock = clock

    # ------------------------------------------------------------------ orders

    async def order_add(self, request: dict[str, Any]) -> dict[str, Any]:
        partner = _text(request, "partner")
        count = _int(request, "count", minimum=1)
        try:
            kind = OrderKind(request.get("kind", "prepaid"))
        except ValueError:
            raise ValueError("kind: prepaid or postpaid") from None
        unit_cost = _int(request, "unit_cost", minimum=0, default=1)
        if kind is OrderKind.PREPAID and unit_cost != 1:
            raise ValueError("unit_cost: a prepaid order counts parts (leave it out)")
        price = request.get("price_minor")
        if price is not None:
            price = _int(request, "price_minor", minimum=0)
        expires = request.get("expires_at")
        if expires is not None and not isinstance(expires, int | float):
            raise ValueError("expires_at: seconds since the epoch, or null")
        expires_at = None if expires is None else float(expires)
        order = NewOrder(
            partner=partner,
            kind=kind,
            limit=count * unit_cost,
            unit_cost=unit_cost,
            expires_at=expires_at,
        )

        def write(conn: sqlite3.Connection) -> int:
            if partner not in {p.system_id for p in self._merged(conn)}:
                raise ValueError(f"no partner {partner!r} (config or smppgw partner add)")
            return add_order(conn, order, price, self.clock())

        order_id = await self.store.run_in_transaction(write)
        self.log.info(
            "order added", order=order_id, partner=partner, limit=order.limit, kind=kind.value
        )
        return {"ok": True, "id": order_id}

    async def order_cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        order_id = _int(request, "id", minimum=1)

        def write(conn: sqlite3.Connection) -> bool:
            if (
                conn.execute("SELECT 1 FROM partner_order WHERE id = ?", (order_id,)).fetchone()
                is None
            ):
                raise ValueError(f"no order {order_id}")
            return cancel_order(conn, order_id, self.clock())

        cancelled = await self.store.run_in_transaction(write)
        self.log.info("order cancelled", order=order_id, cancelled=cancelled)
        return {"ok": True, "id": order_id, "cancelled": cancelled}

    # ------------------------------------------------------------------ partners

    def _merged(
        self, conn: sqlite3.Connection, extra: PartnerAccount | None = None
    ) -> tuple[PartnerSettings, ...]:
        accounts = {a.system_id: a for a in partner_accounts(conn)}
        if extra is not None:
            accounts[extra.system_id] = extra
        return merge_partners(self.config_partners(), accounts.values())

    async def _change(
        self, system_id: str, change: Callable[[PartnerAccount | None, bool], PartnerAccount]
    ) -> dict[str, Any]:
        """Read the account, apply ``change``, check the whole set strictly, save it;
        all in one writer transaction, so a refused change leaves nothing behind."""
        now = self.clock()

        def write(conn: sqlite3.Connection) -> tuple[PartnerSettings, ...]:
            current = next((a for a in partner_accounts(conn) if a.system_id == system_id), None)
            in_config = system_id in {p.system_id for p in self.config_partners()}
            account = change(current, in_config)
            partners = self._merged(conn, account)
            save_partner_account(conn, account, now)
            return partners

        partners = await self.store.run_in_transaction(write)
        if self.on_partners_changed is not None:
            await self.on_partners_changed(partners)
        return {"ok": True, "system_id": system_id}

    async def partner_add(self, request: dict[str, Any]) -> dict[str, Any]:
        system_id = _text(request, "system_id")
        password_hash = check_password_hash(_text(request, "password_hash"))
        settings = request.get("settings") or {}
        if not isinstance(settings, dict):
            raise ValueError("settings: an object of partner fields")
        if _OWN_FIELDS & settings.keys():
            raise ValueError(f"settings: {sorted(_OWN_FIELDS & settings.keys())} go elsewhere")

        def change(current: PartnerAccount | None, in_config: bool) -> PartnerAccount:
            if in_config or (current is not None and current.settings is not None):
                raise ValueError(f"partner {system_id!r} exists already")
            return PartnerAccount(system_id, password_hash, True, dict(settings))

        answer = await self._change(system_id, change)
        self.log.info("partner added", system_id=system_id)
        return answer

    def _existing(self, system_id: str, update: dict[str, Any]) -> Any:
        def change(current: PartnerAccount | None, in_config: bool) -> PartnerAccount:
            if not in_config and (current is None or current.settings is None):
                raise ValueError(f"no partner {system_id!r}")
            return replace(current or PartnerAccount(system_id), **update)

        return change

    async def partner_password(self, request: dict[str, Any]) -> dict[str, Any]:
        system_id = _text(request, "system_id")
        password_hash = check_password_hash(_text(request, "password_hash"))
        answer = await self._change(
            system_id, self._existing(system_id, {"password_hash": password_hash})
        )
        self.log.info("partner password changed", system_id=system_id)
        return answer

    async def partner_enable(self, request: dict[str, Any], enabled: bool) -> dict[str, Any]:
        system_id = _text(request, "system_id")
        answer = await self._change(system_id, self._existing(system_id, {"enabled": enabled}))
        self.log.info("partner enabled" if enabled else "partner disabled", system_id=system_id)
        return answer

    async def partner_list(self, request: dict[str, Any]) -> dict[str, Any]:
        accounts = await self.store.read(partner_accounts)
        rows = partner_rows(self.config_partners(), accounts)
        return {"ok": True, "partners": rows}

    # ------------------------------------------------------------------ members

    async def member_edit(self, request: dict[str, Any]) -> dict[str, Any]:
        member_id = _text(request, "member_id")
        updates = request.get("set")
        if not isinstance(updates, dict) or not updates:
            raise ValueError("set: an object of the fields to change")

        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            member = member_by_id(conn, member_id)
            if member is None:
                raise ValueError(f"no member {member_id!r}")
            changes: dict[str, Any] = {}
            fields = dict(member.fields)
            for key, value in updates.items():
                if key == "msisdn" and not value:
                    raise ValueError("msisdn: a member keeps a number")
                if key in _MEMBER_COLUMNS:
                    changes[key] = value if value != "" else None
                elif value is None or value == "":
                    fields.pop(key, None)  # an empty value removes an imported field
                else:
                    fields[key] = value
            if fields != member.fields:
                changes["fields"] = fields
            try:
                update_member(conn, member_id, changes, self.clock())
            except sqlite3.IntegrityError:
                raise ValueError(f"msisdn: another member has {updates.get('msisdn')}") from None
            changed = member_by_id(conn, member_id)
            assert changed is not None
            return {
                "member_id": changed.member_id,
                "msisdn": changed.msisdn,
                "name": changed.name,
                "province": changed.province,
                "fields": changed.fields,
            }

        member = await self.store.run_in_transaction(write)
        self.log.info("member edited", member_id=member_id, keys=sorted(updates))
        return {"ok": True, "member": member}

    async def member_delete(self, request: dict[str, Any]) -> dict[str, Any]:
        member_id = _text(request, "member_id")
        deleted = await self.store.run_in_transaction(lambda conn: delete_member(conn, member_id))
        if not deleted:
            raise ValueError(f"no member {member_id!r}")
        self.log.info("member deleted", member_id=member_id)
        return {"ok": True, "member_id": member_id, "deleted": True}

    # ------------------------------------------------------------------ opt-out list

    async def optout_change(self, request: dict[str, Any], add: bool) -> dict[str, Any]:
        """Numbers on or off the opt-out list for ``scope`` (a partner, or "" for every
        partner's marketing); ``everywhere`` removes a number's rows of every scope."""
        msisdns = request.get("msisdns")
        if (
            not isinstance(msisdns, list)
            or not msisdns
            or len(msisdns) > MAX_OPT_OUT_NUMBERS
            or not all(isinstance(m, str) and m.isascii() and m.isdigit() for m in msisdns)
        ):
            raise ValueError(
                f"msisdns: 1 to {MAX_OPT_OUT_NUMBERS} numbers in international digits are needed"
            )
        scope = request.get("scope") or ALL_PARTNERS
        if not isinstance(scope, str):
            raise ValueError("scope: a partner's system_id, or empty for every partner")
        source = str(request.get("source") or "cli")[:64]
        everywhere = bool(request.get("everywhere")) and not add
        known = {p.system_id for p in self.config_partners()}

        def write(conn: sqlite3.Connection) -> int:
            if scope and scope not in known | {a.system_id for a in partner_accounts(conn)}:
                raise ValueError(f"scope: no partner {scope!r}")
            if add:
                return add_opt_outs(conn, [(m, scope) for m in msisdns], source, self.clock())
            return remove_opt_outs(conn, msisdns, None if everywhere else scope)

        changed = await self.store.run_in_transaction(write)
        self.log.info(
            "opt-out list changed",
            action="add" if add else "remove",
            scope=scope or "all",
            numbers=len(msisdns),
            changed=changed,
            source=source,
        )
        return {"ok": True, "changed": changed}


def partner_rows(
    config_partners: Sequence[PartnerSettings], stored: Sequence[PartnerAccount]
) -> list[dict[str, Any]]:
    """The merged partners with where each comes from, and refused accounts with why
    (``partner.list``, and ``smppgw partner list`` without a daemon)."""
    accounts = {a.system_id: a for a in stored}
    config_ids = {p.system_id for p in config_partners}
    refused: list[Refusal] = []
    partners = merge_partners(config_partners, accounts.values(), refused=refused)
    rows: list[dict[str, Any]] = [
        {
            "system_id": p.system_id,
            "enabled": p.enabled,
            "origin": partner_origin(p.system_id, config_ids, accounts.get(p.system_id)),
            "billing": p.billing.value,
            "sources": list(p.sources),
            "short_codes": list(p.short_codes),
            "tps": p.tps,
            "refused": None,
        }
        for p in partners
    ]
    rows += [
        {"system_id": r.system_id, "enabled": False, "origin": "store", "refused": r.reason}
        for r in refused
    ]
    return rows


def register_record_commands(
    commands: CommandRegistry,
    store: Store,
    *,
    config_partners: Callable[[], Sequence[PartnerSettings]] = tuple,
    on_partners_changed: Callable[[tuple[PartnerSettings, ...]], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.time,
    log: Any = log,
) -> None:
    """Add the order, partner and member commands (see the module docstring).

    Args:
        config_partners: the config's partners now (the daemon's current config: a
            SIGHUP changes them); merged with the stored accounts to check a change.
        on_partners_changed: awaited with the merged partners after a partner change
            committed; the daemon applies them to its partner server.
        log: where each change is logged (the daemon's log is the audit trail); the CLI
            without a daemon passes a silent one, as its stdout is the answer.
    """
    records = _Records(store, config_partners, on_partners_changed, clock, log)
    table: dict[str, AdminCommand] = {
        "order.add": records.order_add,
        "order.cancel": records.order_cancel,
        "partner.add": records.partner_add,
        "partner.password": records.partner_password,
        "partner.list": records.partner_list,
        "member.edit": records.member_edit,
        "member.delete": records.member_delete,
    }

    async def disable(request: dict[str, Any]) -> dict[str, Any]:
        return await records.partner_enable(request, False)

    async def enable(request: dict[str, Any]) -> dict[str, Any]:
        return await records.partner_enable(request, True)

    async def optout_add(request: dict[str, Any]) -> dict[str, Any]:
        return await records.optout_change(request, True)

    async def optout_remove(request: dict[str, Any]) -> dict[str, Any]:
        return await records.optout_change(request, False)

    table["partner.disable"] = disable
    table["partner.enable"] = enable
    table["optout.add"] = optout_add
    table["optout.remove"] = optout_remove
    names = sorted([*table, "admin.records"])

    async def probe(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "commands": names}

    table["admin.records"] = probe
    for name, command in table.items():
        commands.register(name, command)
