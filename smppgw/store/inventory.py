"""The SQL of operator imports: members, monthly spend, scratch-card codes, gifts, profiles.

The import records are defined here, beside the SQL that writes them, so the store
depends on nothing above it: ``smppgw.imports`` validates files into these records and
hands them to the functions below through :meth:`Store.run_in_transaction`.

Every write function takes ``(conn, records, now)`` with ``now`` in epoch milliseconds
and returns a :class:`WriteResult`: what it inserted, updated and skipped, and the
rows it refused because of what is already in the file (a code already in the
inventory, a member ID taken by another number). It writes only the rows it does not
refuse; whether refusals must undo the rest is the caller's decision (it raises inside
its transaction function to roll back).

The functions look up existing keys with ``IN (...)`` in chunks and write with
``executemany`` in chunks: a 500k-row file is a few thousand statements, not 500k
round trips, and no statement exceeds SQLite's variable limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = [
    "CampaignStats",
    "CodeRecord",
    "GiftRecord",
    "GiftStats",
    "InventoryStats",
    "MemberRecord",
    "ProfileRecord",
    "RowError",
    "SpendRecord",
    "WriteResult",
    "apply_spend",
    "insert_codes",
    "insert_gifts",
    "inventory_stats",
    "upsert_members",
    "upsert_profiles",
]

T = TypeVar("T")

#: Keys per ``IN (...)`` lookup (SQLite allows 32766 variables; small keeps plans cheap).
LOOKUP_CHUNK = 500
#: Rows per ``executemany`` call.
WRITE_CHUNK = 1000
#: Rounds of fresh candidates for generated member IDs before a row is refused.
MEMBER_ID_TRIES = 20


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row: its 1-based line in the file (the header is line 1), the column
    at fault (None for the row as a whole) and why, in words an operator can act on."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A loyalty member; ``member_id`` None means "generate one" (new members only)."""

    line: int
    msisdn: str
    member_id: str | None = None
    name: str | None = None
    province: str | None = None
    #: Every other column of the file, kept in ``member.fields`` (JSON).
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SpendRecord:
    """One month's spend of a member, found by ``member_id`` or else by ``msisdn``."""

    line: int
    month: str  # YYYY-MM
    amount: int  # minor units
    member_id: str | None = None
    msisdn: str | None = None


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """A scratch-card code (already upper-case and trimmed)."""

    line: int
    code: str
    points: int
    campaign: str
    valid_from: int | None = None  # ms
    valid_to: int | None = None  # ms


@dataclass(frozen=True, slots=True)
class GiftRecord:
    line: int
    gift_type: str
    serial: str
    cost_points: int
    pin: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """Subscriber facts; None in ``balance``/``opted_out`` keeps what the store has."""

    line: int
    msisdn: str
    arpu_3m: int
    balance: int | None = None
    opted_out: bool | None = None


@dataclass(slots=True)
class WriteResult:
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CampaignStats:
    campaign: str
    total: int
    used: int

    @property
    def free(self) -> int:
        return self.total - self.used


@dataclass(frozen=True, slots=True)
class GiftStats:
    gift_type: str
    total: int
    free: int


@dataclass(frozen=True, slots=True)
class InventoryStats:
    members: int
    profiles: int
    campaigns: tuple[CampaignStats, ...]
    gifts: tuple[GiftStats, ...]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lookup(
    conn: sqlite3.Connection,
    sql: str,
    keys: Iterable[str],
    *,
    prefix: tuple[object, ...] = (),
) -> dict[str, tuple[object, ...]]:
    """Rows of ``sql`` (``{marks}`` stands for the key placeholders, after ``prefix``'s)
    for the given keys, by their first column."""
    unique = list(dict.fromkeys(keys))
    found: dict[str, tuple[object, ...]] = {}
    for chunk in _chunks(unique, LOOKUP_CHUNK):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(sql.format(marks=marks), (*prefix, *chunk)):
            found[str(row[0])] = tuple(row)
    return found


def _write(conn: sqlite3.Connection, sql: str, params: Sequence[Sequence[object]]) -> None:
    for chunk in _chunks(params, WRITE_CHUNK):
        conn.executemany(sql, chunk)


# ---------------------------------------------------------------------- members


def upsert_members(
    conn: sqlite3.Connection,
    records: Sequence[MemberRecord],
    now: int,
    new_member_id: Callable[[str | None], str] | None = None,
) -> WriteResult:
    """Insert new members and update known ones (same msisdn).

    A known member keeps its member ID and points; its name and province change only
    where the file has a value, and the file's other columns are merged into its
    ``fields``. A new member without an ID gets one from ``new_member_id(province)``,
    drawn again while it collides with a stored or just-assigned ID.

    Refused: a file member ID that differs from the stored one of the same msisdn, or
    that another msisdn already holds; a new member without ID when no generator is
    given, or when no free ID turned up.
    """
    result = WriteResult()
    known = _lookup(
        conn,
        "SELECT msisdn, member_id FROM member WHERE msisdn IN ({marks})",
        (r.msisdn for r in records),
    )
    given_ids = _lookup(
        conn,
        "SELECT member_id, msisdn FROM member WHERE member_id IN ({marks})",
        (r.member_id for r in records if r.member_id),
    )
    updates: list[tuple[object, ...]] = []
    inserts: list[MemberRecord] = []
    needs_id: list[MemberRecord] = []
    for r in records:
        stored = known.get(r.msisdn)
        if stored is not None:
            stored_id = str(stored[1])
            if r.member_id and r.member_id != stored_id:
                result.errors.append(
                    RowError(
                        r.line,
                        "member_id",
                        f"{r.msisdn} is already member {stored_id}, not {r.member_id}",
                    )
                )
                continue
            updates.append((r.name, r.province, _fields_json(r), now, r.msisdn))
        elif r.member_id:
            holder = given_ids.get(r.member_id)
            if holder is not None:
                result.errors.append(
                    RowError(
                        r.line,
                        "member_id",
                        f"member_id {r.member_id} already belongs to {holder[1]}",
                    )
                )
                continue
            inserts.append(r)
        elif new_member_id is None:
            result.errors.append(RowError(r.line, "member_id", "missing (no ID pattern set)"))
        else:
            needs_id.append(r)
    taken = {r.member_id for r in inserts if r.member_id}
    generated, failed = _generate_ids(conn, needs_id, new_member_id, taken)
    result.errors.extend(
        RowError(r.line, "member_id", "no free member ID found (pattern too narrow?)")
        for r in failed
    )
    rows = [
        (r.member_id or generated[r.line], r.msisdn, r.name, r.province, _fields_json(r), now, now)
        for r in (*inserts, *(r for r in needs_id if r.line in generated))
    ]
    _write(
        conn,
        "INSERT INTO member (member_id, msisdn, name, province, fields, created_at,"
        " updated_at) VALUES (?,?,?,?,?,?,?)",
        rows,
    )
    _write(
        conn,
        "UPDATE member SET name = COALESCE(?, name), province = COALESCE(?, province),"
        " fields = json_patch(fields, ?), updated_at = ? WHERE msisdn = ?",
        updates,
    )
    result.inserted = len(rows)
    result.updated = len(updates)
    result.errors.sort(key=lambda e: e.line)
    return result


def _fields_json(r: MemberRecord) -> str:
    return json.dumps(dict(r.fields), ensure_ascii=False, sort_keys=True)


def _generate_ids(
    conn: sqlite3.Connection,
    records: list[MemberRecord],
    new_member_id: Callable[[str | None], str] | None,
    taken: set[str],
) -> tuple[dict[int, str], list[MemberRecord]]:
    """Draw IDs for ``records`` (by line), a round at a time: each round's candidates are
    checked against the table in one lookup, and the colliding ones drawn again."""
    assigned: dict[int, str] = {}
    pending = records
    if new_member_id is None:
        return assigned, pending
    for _ in range(MEMBER_ID_TRIES):
        if not pending:
            break
        candidates = {r.line: new_member_id(r.province) for r in pending}
        stored = _lookup(
            conn, "SELECT member_id FROM member WHERE member_id IN ({marks})", candidates.values()
        )
        retry: list[MemberRecord] = []
        for r in pending:
            candidate = candidates[r.line]
            if candidate in stored or candidate in taken:
                retry.append(r)
            else:
                taken.add(candidate)
                assigned[r.line] = candidate
        pending = retry
    return assigned, pending


# ---------------------------------------------------------------------- monthly spend

_SPEND_KIND = "monthly_spend"


def apply_spend(conn: sqlite3.Connection, records: Sequence[SpendRecord], now: int) -> WriteResult:
    """Record each month's spend as an event and set ``member.monthly_spend`` to the latest.

    The history is one ``event`` row per member and month (``kind='monthly_spend'``,
    ``subject`` the msisdn, payload ``{month, amount}``) keyed by
    ``monthly_spend:<msisdn>:<month>``, so importing a month again corrects its figure
    instead of adding a second one (counted as updated). The rows are written already
    processed (``processed_at = now``): they are history, not work for the scenario
    engine. ``monthly_spend`` then takes the figure of each member's latest month,
    whichever file brought it.
    """
    result = WriteResult()
    by_id = _lookup(
        conn,
        "SELECT member_id, msisdn FROM member WHERE member_id IN ({marks})",
        (r.member_id for r in records if r.member_id),
    )
    by_msisdn = _lookup(
        conn,
        "SELECT msisdn FROM member WHERE msisdn IN ({marks})",
        (r.msisdn for r in records if not r.member_id and r.msisdn),
    )
    resolved: list[tuple[SpendRecord, str]] = []
    first_line: dict[tuple[str, str], int] = {}
    for r in records:
        if r.member_id:
            row = by_id.get(r.member_id)
            if row is None:
                result.errors.append(RowError(r.line, "member_id", f"no member {r.member_id}"))
                continue
            msisdn = str(row[1])
        else:
            msisdn = r.msisdn or ""
            if msisdn not in by_msisdn:
                result.errors.append(RowError(r.line, "msisdn", f"no member with msisdn {msisdn}"))
                continue
        seen = first_line.setdefault((msisdn, r.month), r.line)
        if seen != r.line:
            result.errors.append(
                RowError(r.line, "month", f"{msisdn} {r.month} is also on line {seen}")
            )
            continue
        resolved.append((r, msisdn))
    keys = [f"{_SPEND_KIND}:{msisdn}:{r.month}" for r, msisdn in resolved]
    existing = _lookup(conn, "SELECT event_key FROM event WHERE event_key IN ({marks})", keys)
    params = [
        (_SPEND_KIND, msisdn, json.dumps({"month": r.month, "amount": r.amount}), now, key, now)
        for (r, msisdn), key in zip(resolved, keys, strict=True)
    ]
    _write(
        conn,
        "INSERT INTO event (kind, subject, payload, created_at, event_key, processed_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (event_key) WHERE event_key IS NOT NULL"
        " DO UPDATE SET payload = excluded.payload",
        params,
    )
    members = sorted({msisdn for _, msisdn in resolved})
    _write(
        conn,
        "UPDATE member SET monthly_spend = (SELECT json_extract(e.payload, '$.amount')"
        " FROM event e WHERE e.subject = member.msisdn AND e.kind = 'monthly_spend'"
        " ORDER BY json_extract(e.payload, '$.month') DESC LIMIT 1), updated_at = ?"
        " WHERE msisdn = ?",
        [(now, m) for m in members],
    )
    result.updated = sum(1 for k in keys if k in existing)
    result.inserted = len(keys) - result.updated
    result.errors.sort(key=lambda e: e.line)
    return result


# ---------------------------------------------------------------------- codes and gifts


def insert_codes(
    conn: sqlite3.Connection,
    records: Sequence[CodeRecord],
    now: int,
    *,
    skip_existing: bool = False,
) -> WriteResult:
    """Add scratch-card codes. A code already in the inventory (used or not) is refused,
    or counted as skipped with ``skip_existing``: a card provider's file sent twice must
    not reset a used code or move it to another campaign."""
    del now  # the table has no creation time; kept for a uniform signature
    result = WriteResult()
    existing = _lookup(
        conn,
        "SELECT code, campaign FROM code_inventory WHERE code IN ({marks})",
        (r.code for r in records),
    )
    rows: list[tuple[object, ...]] = []
    for r in records:
        stored = existing.get(r.code)
        if stored is None:
            rows.append((r.code, r.campaign, r.points, r.valid_from, r.valid_to))
        elif skip_existing:
            result.skipped += 1
        else:
            result.errors.append(
                RowError(
                    r.line, "code", f"{r.code} is already in the inventory (campaign {stored[1]})"
                )
            )
    _write(
        conn,
        "INSERT INTO code_inventory (code, campaign, points, valid_from, valid_to)"
        " VALUES (?,?,?,?,?)",
        rows,
    )
    result.inserted = len(rows)
    return result


def insert_gifts(
    conn: sqlite3.Connection,
    records: Sequence[GiftRecord],
    now: int,
    *,
    skip_existing: bool = False,
) -> WriteResult:
    """Add gifts; a (gift_type, serial) already stored is refused (or skipped), for the
    same reason as codes: it may already be assigned to a member."""
    del now
    result = WriteResult()
    by_type: dict[str, list[str]] = {}
    for r in records:
        by_type.setdefault(r.gift_type, []).append(r.serial)
    existing: set[tuple[str, str]] = set()
    for gift_type, serials in by_type.items():
        # One lookup per type keeps to the (gift_type, serial) unique index.
        found = _lookup(
            conn,
            "SELECT serial FROM gift_inventory WHERE gift_type = ? AND serial IN ({marks})",
            serials,
            prefix=(gift_type,),
        )
        existing.update((gift_type, s) for s in found)
    rows: list[tuple[object, ...]] = []
    for r in records:
        if (r.gift_type, r.serial) not in existing:
            rows.append((r.gift_type, r.cost_points, r.serial, r.pin))
        elif skip_existing:
            result.skipped += 1
        else:
            result.errors.append(
                RowError(r.line, "serial", f"{r.gift_type} {r.serial} is already in the inventory")
            )
    _write(
        conn,
        "INSERT INTO gift_inventory (gift_type, cost_points, serial, pin) VALUES (?,?,?,?)",
        rows,
    )
    result.inserted = len(rows)
    return result


# ---------------------------------------------------------------------- profiles


def upsert_profiles(
    conn: sqlite3.Connection, records: Sequence[ProfileRecord], now: int
) -> WriteResult:
    """Insert or update subscriber profiles.

    ``arpu_3m`` always takes the file's value; ``balance`` and ``opted_out`` only where
    the file has one. A balance that changes also gets a ``balance_ledger`` row
    (reason ``import``) so the charging adapter's history explains the new figure.
    The scenario's own flags (``advance_registered``/``advance_paused``) are never
    touched.
    """
    result = WriteResult()
    existing = _lookup(
        conn,
        "SELECT msisdn, balance FROM subscriber_profile WHERE msisdn IN ({marks})",
        (r.msisdn for r in records),
    )
    params: list[tuple[object, ...]] = []
    ledger: list[tuple[object, ...]] = []
    for r in records:
        opted = None if r.opted_out is None else int(r.opted_out)
        params.append((r.msisdn, r.arpu_3m, r.balance, opted, now))
        if r.balance is not None:
            stored = existing.get(r.msisdn)
            before = stored[1] if stored is not None else None
            if before != r.balance:
                delta = r.balance - (before if isinstance(before, int) else 0)
                ledger.append((r.msisdn, delta, r.balance, "import", None, now))
    _write(
        conn,
        "INSERT INTO subscriber_profile (msisdn, arpu_3m, balance, opted_out,"
        " updated_at) VALUES (?1, ?2, ?3, COALESCE(?4, 0), ?5) ON CONFLICT (msisdn) DO UPDATE"
        " SET arpu_3m = excluded.arpu_3m, balance = COALESCE(?3, balance),"
        " opted_out = COALESCE(?4, opted_out), updated_at = excluded.updated_at",
        params,
    )
    _write(
        conn,
        "INSERT INTO balance_ledger (msisdn, delta, balance_after, reason, ref,"
        " created_at) VALUES (?,?,?,?,?,?)",
        ledger,
    )
    result.updated = sum(1 for r in records if r.msisdn in existing)
    result.inserted = len(records) - result.updated
    return result


# ---------------------------------------------------------------------- reads


def inventory_stats(conn: sqlite3.Connection) -> InventoryStats:
    """Counts for ``smppgw inventory``: codes per campaign, free gifts per type."""
    campaigns = tuple(
        CampaignStats(str(c), int(total), int(used))
        for c, total, used in conn.execute(
            "SELECT campaign, COUNT(*), COUNT(used_by) FROM code_inventory"
            " GROUP BY campaign ORDER BY campaign"
        )
    )
    gifts = tuple(
        GiftStats(str(t), int(total), int(free))
        for t, total, free in conn.execute(
            "SELECT gift_type, COUNT(*), COUNT(*) - COUNT(assigned_to) FROM gift_inventory"
            " GROUP BY gift_type ORDER BY gift_type"
        )
    )
    members = int(conn.execute("SELECT COUNT(*) FROM member").fetchone()[0])
    profiles = int(conn.execute("SELECT COUNT(*) FROM subscriber_profile").fetchone()[0])
    return InventoryStats(members, profiles, campaigns, gifts)
