"""The records and checks of the chaos test (``test_chaos.py``): what the journal says at
the end, and the five invariants checked against the partners' and the simulator's
records. The processes and partners that produce those records are in
``chaos_tools.py``.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chaos_tools import SHORT_CODE

from smppgw.protocol.text import decode_text

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from chaos_tools import Partner

# ---------------------------------------------------------------------------- journal


@dataclass
class JournalMessage:
    id: int
    partner: str
    destination: str
    state: str
    attempts: int
    part_count: int
    registered_delivery: int
    final_status: int | None
    error: str | None
    order_id: int | None
    reservation_id: int | None
    part_texts: list[str]


@dataclass
class Journal:
    messages: dict[int, JournalMessage]
    orders: list[tuple[int, str, int, int, int]]  # id, partner, limit, reserved, spent
    ledger: dict[int, tuple[str, int | None, int]]  # reservation -> state, charged, amount
    outbox: list[tuple[str, int | None, str]]  # partner, message id, stat
    inbound_mo: list[tuple[int, str, str, str, int | None]]  # id, from, to, text, processed
    inbound_unprocessed: int
    mo_log: Counter[int]  # inbound id -> logged 'mo' rows
    codes: dict[str, tuple[int, str | None]]  # code -> points, used_by
    members: dict[str, tuple[str, int]]  # member_id -> msisdn, points
    points_ledger: list[tuple[str, int, int, str, str | None]]  # member, delta, after, why, ref


def _text_of(payload: bytes, data_coding: int, udh: bool) -> str:
    if udh and payload:
        payload = payload[payload[0] + 1 :]
    return decode_text(payload, data_coding)


def read_journal(db: Path) -> Journal:
    """Everything the checks need from the journal, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        parts: dict[int, list[bytes]] = defaultdict(list)
        for mid, payload in conn.execute(
            "SELECT message_id, payload FROM mt_part ORDER BY message_id, part_no"
        ):
            parts[int(mid)].append(bytes(payload))
        messages: dict[int, JournalMessage] = {}
        for row in conn.execute(
            "SELECT id, partner, destination_addr, state, attempts, part_count,"
            " registered_delivery, final_status, error, order_id, reservation_id, body,"
            " data_coding, esm_class FROM mt_message"
        ):
            mid, dc, esm = int(row[0]), int(row[12]), int(row[13])
            texts = (
                [_text_of(p, dc, True) for p in parts[mid]]
                if parts.get(mid)
                else [_text_of(bytes(row[11]), dc, bool(esm & 0x40))]
            )
            messages[mid] = JournalMessage(
                mid, str(row[1]), str(row[2]), str(row[3]), int(row[4]), int(row[5]),
                int(row[6]), row[7], row[8], row[9], row[10], texts,
            )  # fmt: skip
        inbound = [
            (int(r[0]), str(r[1]), str(r[2]), _text_of(bytes(r[3]), int(r[4]), False), r[5])
            for r in conn.execute(
                "SELECT id, source_addr, destination_addr, body, data_coding, processed_at"
                " FROM inbound WHERE kind = 'mo'"
            )
        ]
        return Journal(
            messages=messages,
            orders=[
                (int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]))
                for r in conn.execute(
                    "SELECT id, partner, quota_limit, reserved, spent FROM partner_order"
                )
            ],
            ledger={
                int(r[0]): (str(r[1]), r[2], int(r[3]))
                for r in conn.execute("SELECT id, state, charged, amount FROM quota_ledger")
            },
            outbox=[
                (str(r[0]), r[1], str(r[2]))
                for r in conn.execute("SELECT partner, message_id, stat FROM receipt_outbox")
            ],
            inbound_mo=inbound,
            inbound_unprocessed=conn.execute(
                "SELECT count(*) FROM inbound WHERE processed_at IS NULL"
            ).fetchone()[0],
            mo_log=Counter(
                int(r[0])
                for r in conn.execute(
                    "SELECT inbound_id FROM message_log WHERE direction = 'mo'"
                    " AND inbound_id IS NOT NULL"
                )
            ),
            codes={
                str(r[0]): (int(r[1]), r[2])
                for r in conn.execute("SELECT code, points, used_by FROM code_inventory")
            },
            members={
                str(r[0]): (str(r[1]), int(r[2]))
                for r in conn.execute("SELECT member_id, msisdn, points FROM member")
            },
            points_ledger=[
                (str(r[0]), int(r[1]), int(r[2]), str(r[3]), r[4])
                for r in conn.execute(
                    "SELECT member_id, delta, balance_after, reason, ref FROM points_ledger"
                )
            ],
        )
    finally:
        conn.close()


def unfinished(db: Path) -> dict[str, int]:
    """What is still moving in the journal (the drain waits for all zeros)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "mt": one("SELECT count(*) FROM mt_message WHERE state IN ('accepted','submitted')"),
            "inbound": one("SELECT count(*) FROM inbound WHERE processed_at IS NULL"),
            "outbox": one("SELECT count(*) FROM receipt_outbox"),
        }
    finally:
        conn.close()


# ---------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Mo:
    source: str
    text: str
    epoch: int


@dataclass
class Report:
    """What the checks found: ``violations`` fail the test; the rest is the summary."""

    violations: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.violations.append(text)

    def row(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))

    def table(self) -> str:
        width = max((len(n) for n, _ in self.rows), default=10)
        lines = [f"  {n:<{width}}  {v}" for n, v in self.rows]
        if self.violations:
            lines.append(f"  VIOLATIONS ({len(self.violations)}):")
            lines += [f"    - {v}" for v in self.violations[:40]]
        return "\n".join(lines)


_CHARGED_ON_RECEIPT = ("failed", "expired", "rejected")


def check_invariants(
    journal: Journal,
    submits: Sequence[Sequence[Any]],
    run_bounds: Sequence[int],
    partners: Sequence[Partner],
    mos: Sequence[Mo],
    report: Report,
) -> None:
    """Check the five invariants; each rule is written where it is checked.

    ``submits`` are the simulator's records in order; ``run_bounds`` the simulator's
    submit count read right after each kill (after the dead process's last bytes were
    read), so record ``i`` belongs to daemon run ``bisect(run_bounds, i)``.
    """
    _check_acknowledged(journal, partners, report)
    _check_carrier_copies(journal, submits, run_bounds, report)
    _check_quotas(journal, partners, report)
    _check_receipts(journal, partners, report)
    _check_scenarios(journal, mos, report)


def _check_acknowledged(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """1a. Every id a partner got status 0 for is in the journal, as that partner's, with
    the destination and the text it sent (parts joined)."""
    acked = 0
    for partner in partners:
        for mid, sent in partner.acked.items():
            acked += 1
            m = journal.messages.get(mid)
            if m is None:
                report.fail(f"LOST: {partner.system_id} message {mid} acknowledged, not journaled")
            elif (m.partner, m.destination, "".join(m.part_texts)) != (
                partner.system_id,
                sent.destination,
                sent.text,
            ):
                report.fail(f"message {mid} journaled as {m} but was sent as {sent}")
    report.row("messages acknowledged to partners", acked)


def _run_of(index: int, bounds: Sequence[int]) -> int:
    run = 0
    for bound in bounds:
        if index >= bound:
            run += 1
    return run


def _check_carrier_copies(
    journal: Journal, submits: Sequence[Sequence[Any]], bounds: Sequence[int], report: Report
) -> None:
    """1b and 2: what reached the carrier, and every duplicate explained.

    Copies are matched by (destination, part text): the simulator does not know our
    ids. Scenario replies may repeat a text to one number, so messages are grouped by
    that key. Per group of ``n`` messages with ``A`` attempts recorded between them:

    - at least one accepted copy (status 0) of each part of every message the journal
      has as ``sent`` or ``delivered`` (and of a ``failed``/``expired`` one that a
      carrier receipt finalised), else the message was lost;
    - in any one daemon run, at most ``n + A`` accepted copies: a second copy in the
      same run needs a resend the journal counted (a timeout or a lost connection
      increments ``attempts``: ``MtPipeline.retry(possible_duplicate=True)``);
    - copies in a later run than the first are explained by the kill between: the
      carrier's answer (or its journaling) died with the process and recovery sent the
      message again (at-least-once, documented in ``gateway/mt.py``).

    Copies the carrier refused (throttled, queue full) or never answered are not
    duplicates: the subscriber never got them.
    """
    copies: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for index, record in enumerate(submits):
        destination, text, _carrier_id, status = record[:4]
        if status == 0:
            copies[(destination, text)][_run_of(index, bounds)] += 1
    groups: dict[tuple[str, str], list[JournalMessage]] = defaultdict(list)
    for m in journal.messages.values():
        for text in m.part_texts:
            groups[(m.destination, text)].append(m)
    reached = lost = 0
    dup_retry = dup_kill = 0
    for key, members in groups.items():
        runs = copies.get(key, Counter())
        must = [
            m
            for m in members
            if m.state in ("sent", "delivered")
            or (m.state in _CHARGED_ON_RECEIPT and m.final_status is None)
        ]
        total = sum(runs.values())
        if total < len(must):
            lost += len(must) - total
            ids = [m.id for m in must]
            report.fail(f"LOST at the carrier: {key} messages {ids} have {total} copies")
        elif must:
            reached += len(must)
        n = len(members)
        attempts = sum(m.attempts for m in members)
        for run, count in sorted(runs.items()):
            if count > n + attempts:
                report.fail(
                    f"UNEXPLAINED DUPLICATE: {key} {count} copies in run {run}, "
                    f"{n} messages {[m.id for m in members]} with {attempts} attempts"
                )
        extra = max(0, total - n)
        within = sum(max(0, c - n) for c in runs.values())
        dup_retry += min(extra, within)
        dup_kill += extra - min(extra, within)
    known = set(groups)
    stray = sum(c.total() for k, c in copies.items() if k not in known)
    if stray:
        report.fail(f"{stray} accepted copies at the carrier match no journaled message")
    report.row("message parts that reached the carrier", reached)
    report.row("duplicate copies explained by a resend (attempts>0)", dup_retry)
    report.row("duplicate copies explained by a kill between runs", dup_kill)
    report.row("carrier copies accepted / refused / unanswered",
               f"{sum(c.total() for c in copies.values())} / "
               f"{sum(1 for r in submits if r[3] not in (0, None))} / "
               f"{sum(1 for r in submits if r[3] is None)}")  # fmt: skip


def _check_quotas(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """3. Quotas exact, from the messages themselves (``store/quota.py``'s semantics):

    - a message still unfinished (accepted, submitted) holds its parts as *reserved*;
    - one the carrier took and that is final as ``sent``/``delivered``, or final from a
      carrier receipt (failed/expired with no status of ours), is *charged* its parts;
    - one the gateway failed itself (final_status set: refused, out of attempts) is
      charged nothing.

    For every order: reserved and spent equal those sums over its messages, every
    ledger row agrees with its message, and reserved + spent <= limit.
    """
    by_order: dict[int, list[JournalMessage]] = defaultdict(list)
    for m in journal.messages.values():
        if m.order_id is not None:
            by_order[m.order_id].append(m)
    for order_id, owner, limit, reserved, spent in journal.orders:
        want_reserved = want_spent = 0
        for m in by_order.get(order_id, []):
            row = journal.ledger.get(m.reservation_id or -1)
            if m.state in ("accepted", "submitted"):
                want_reserved += m.part_count
                if row is None or row[0] != "reserved":
                    report.fail(f"message {m.id} unfinished but its reservation is {row}")
                continue
            charge = m.part_count if (
                m.state in ("sent", "delivered")
                or (m.state in _CHARGED_ON_RECEIPT and m.final_status is None)
            ) else 0  # fmt: skip
            want_spent += charge
            if row is None or row[0] != "settled" or row[1] != charge:
                report.fail(f"message {m.id} ({m.state}) should be charged {charge}: {row}")
        if (reserved, spent) != (want_reserved, want_spent):
            report.fail(
                f"order {order_id} of {owner}: reserved/spent {reserved}/{spent}, "
                f"its messages say {want_reserved}/{want_spent}"
            )
        if reserved + spent > limit:
            report.fail(f"order {order_id} of {owner} over its limit: {reserved}+{spent}>{limit}")
        report.row(
            f"order {order_id} ({owner}) limit/spent/reserved", f"{limit}/{spent}/{reserved}"
        )
    for partner in partners:
        report.row(
            f"{partner.system_id}: submitted/acked/refused(status:n)",
            f"{partner.submitted}/{len(partner.acked)}/"
            + ",".join(f"{s:#x}:{n}" for s, n in sorted(partner.refused.items())),
        )


def _check_receipts(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """4. Receipts to partners: exactly once per message id, or still owed.

    - every journaled message of the partner that asked for a receipt and is final got
      at least one copy the partner answered, or is still in ``receipt_outbox`` (then
      reported as undelivered);
    - a second copy of a receipt the partner had *answered* is a duplicate, explained
      only by a daemon kill between the two copies (the answer was acknowledged in the
      outbox in a batch that died with the process); a copy the partner dropped
      unanswered is expected to come again and is not a duplicate;
    - no receipt for an id that is not the partner's message.
    """
    owed = {(p, mid) for p, mid, _ in journal.outbox if mid is not None}
    delivered = in_outbox = dups = dup_kill = dropped = 0
    for partner in partners:
        sid = partner.system_id
        for mid, copies in partner.receipts.items():
            m = journal.messages.get(mid)
            if m is None or m.partner != sid:
                report.fail(f"{sid} got a receipt for {mid}, not its message")
                continue
            answered = [c for c in copies if c.answered]
            dropped += len(copies) - len(answered)
            for first, later in itertools.pairwise(answered):
                dups += 1
                if later.epoch > first.epoch:
                    dup_kill += 1
                else:
                    report.fail(
                        f"DUPLICATE RECEIPT: {sid} message {mid} answered twice without a kill"
                        f" between ({copies})"
                    )
        for m in journal.messages.values():
            if m.partner != sid or not m.registered_delivery & 0x03:
                continue
            if m.state in ("accepted", "submitted"):
                continue
            if any(c.answered for c in partner.receipts.get(m.id, [])):
                delivered += 1
            elif (sid, m.id) in owed:
                in_outbox += 1
            else:
                report.fail(f"receipt for {sid} message {m.id} ({m.state}) never delivered")
    report.row("receipts delivered to partners (answered)", delivered)
    report.row("receipts still in the outbox (undelivered)", in_outbox)
    report.row("receipt copies dropped unanswered by a leaving partner", dropped)
    report.row("duplicate receipts (all after a kill)", f"{dups} ({dup_kill} after a kill)")


def _check_scenarios(journal: Journal, mos: Sequence[Mo], report: Report) -> None:
    """5. Scenario state.

    - every code credited at most once: one ``points_ledger`` row (reason ``code``) per
      used code, for the member in ``used_by``, of the code's points; none for an unused
      code;
    - each member's points equal the sum of its ledger deltas; no balance negative;
    - every MO injected is in ``inbound`` once: per content (number, text) the rows
      equal the injections. Fewer is allowed only for a content injected more than
      once (a subscriber's repeat taken for the carrier's redelivery after a dropped
      bind: the documented price of content-based dedup, ``gateway/inbound.py``); more
      would be an MO processed twice;
    - every inbound MO processed, and logged once.
    """
    credits: dict[str, list[tuple[str, int]]] = defaultdict(list)
    sums: Counter[str] = Counter()
    for member, delta, after, why, ref in journal.points_ledger:
        sums[member] += delta
        if after < 0:
            report.fail(f"member {member} balance went to {after}")
        if why == "code" and ref is not None:
            credits[ref].append((member, delta))
    used = 0
    for code, (points, used_by) in journal.codes.items():
        credited = credits.get(code, [])
        if used_by is None:
            if credited:
                report.fail(f"code {code} unused but credited {credited}")
            continue
        used += 1
        if credited != [(used_by, points)]:
            report.fail(
                f"code {code} used by {used_by} credited {credited} (once, {points} expected)"
            )
    for member_id, (_msisdn, points) in journal.members.items():
        if points < 0 or points != sums[member_id]:
            report.fail(f"member {member_id} has {points} points, ledger says {sums[member_id]}")
    injected = Counter((m.source, m.text) for m in mos)
    stored = Counter(
        (src, text) for _, src, dst, text, _ in journal.inbound_mo if dst == SHORT_CODE
    )
    merged = 0
    for key in injected.keys() | stored.keys():
        want, got = injected[key], stored[key]
        if got > want:
            report.fail(f"MO {key} injected {want} times, journaled {got} times")
        elif got < want:
            if want == 1 or got == 0:
                report.fail(f"MO {key} injected {want} times, journaled {got} times")
            merged += want - got
    for inbound_id, *_rest, processed in journal.inbound_mo:
        if processed is None:
            report.fail(f"inbound MO {inbound_id} never processed")
        elif journal.mo_log[inbound_id] != 1:
            report.fail(f"inbound MO {inbound_id} logged {journal.mo_log[inbound_id]} times")
    report.row("MO injected / journaled", f"{len(mos)} / {len(journal.inbound_mo)}")
    report.row("MO repeats taken for a redelivery", merged)
    report.row("codes credited (each once)", used)
    report.row("members / total points", f"{len(journal.members)} / {sum(sums.values())}")
