"""``smppgw status``: what the running daemon is doing, in one look.

Why beside the metrics: an operator on the host (a partner calls, "nothing arrives")
wants the answer in one command, without a Prometheus at hand: which carrier binds are
up and how full their windows are, what waits in each carrier's lanes, for its
schedule or a retry, or for a receipt, and per partner its binds, what it sent and
was refused, and the receipts it has not taken yet (a partner whose receiver bind is
down piles them up). Kannel's status page and Jasmin's ``jcli`` answer the same need.

The daemon answers the admin socket's ``{"cmd": "status"}`` with :func:`snapshot`, a
JSON object; the CLI prints it as tables (``--json``: as it came).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from smppgw import __version__
from smppgw.app.cli_tables import table_lines
from smppgw.net.partner_stats import PartnerStatistics

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping

    from smppgw.gateway.mt import MtPipeline
    from smppgw.net.carrier import CarrierClient
    from smppgw.net.partner_server import PartnerServer
    from smppgw.store import Store

__all__ = ["format_status", "receipts_owed", "snapshot"]


def receipts_owed(conn: sqlite3.Connection) -> dict[str, int]:
    """Receipts (and MO) waiting in each partner's outbox: sent or not, not yet
    acknowledged (an acknowledged one is deleted)."""
    rows = conn.execute("SELECT partner, COUNT(*) FROM receipt_outbox GROUP BY partner")
    return {str(partner): int(count) for partner, count in rows}


async def snapshot(
    *,
    started: float,
    store: Store,
    store_path: str,
    pipeline: MtPipeline,
    carriers: Mapping[str, CarrierClient],
    server: PartnerServer | None,
    partners: list[str],
) -> dict[str, Any]:
    """The running daemon's state (``started``: its ``time.time()`` at start;
    ``store_path``: the journal's absolute path)."""
    owed = await store.read(receipts_owed)
    rows = []
    for name, client in carriers.items():
        s = client.statistics()
        queue = pipeline.queues.get(name)
        rows.append(
            {
                "name": name,
                "binds_up": s.binds_up,
                "binds": s.binds_configured,
                "window_used": s.window_used,
                "window_size": s.window_size,
                "queued_transactional": 0 if queue is None else queue.depth(1),
                "queued_marketing": 0 if queue is None else queue.depth(0),
                "submits": s.submits,
                "submit_errors": s.submit_errors,
                "throttled": s.throttled,
                "reconnects": s.reconnects,
            }
        )
    mt = pipeline.statistics()
    served = server.statistics() if server is not None else None
    counts = served.partners if served is not None else {}
    partner_rows = []
    for system_id in partners:
        p = counts.get(system_id) or PartnerStatistics()  # never bound: all zero
        partner_rows.append(
            {
                "system_id": system_id,
                "binds": p.binds,
                "accepted": p.accepted,
                "held": p.held,
                "refused": p.refused,
                "throttled": p.throttled,
                "opted_out": p.opted_out,
                "receipts_owed": owed.get(system_id, 0),
            }
        )
    return {
        "ok": True,
        "version": __version__,
        "uptime_s": round(time.time() - started, 1),
        "store": {"available": store.available, "path": store_path},
        "carriers": rows,
        "messages": {
            "queued": mt.queued,
            "scheduled": pipeline.scheduled,
            "retrying": mt.delayed - pipeline.scheduled,
            "awaiting_receipts": mt.in_flight_receipts,
            "failed": mt.failed,
            "opted_out_when_due": mt.opted_out,
            "receipts_unmatched": mt.receipts_unmatched,
        },
        "partners": partner_rows,
        "server": None if served is None else {"sessions": served.sessions, "bound": served.bound},
    }


def format_status(status: Mapping[str, Any]) -> str:
    """The snapshot as an operator reads it: a head line, then tables."""
    up = int(status["uptime_s"])
    store = status["store"]
    lines = [
        f"smppgw {status['version']}, up {up // 3600}h{up % 3600 // 60:02d}m,"
        f" store {'ok' if store['available'] else 'UNAVAILABLE'} ({store['path']})",
        "",
    ]
    carriers = [
        {
            "carrier": c["name"],
            "binds": f"{c['binds_up']}/{c['binds']}",
            "window": f"{c['window_used']}/{c['window_size']}",
            "queued otp/bulk": f"{c['queued_transactional']}/{c['queued_marketing']}",
            "submitted": c["submits"],
            "errors": c["submit_errors"],
            "throttled": c["throttled"],
            "reconnects": c["reconnects"],
        }
        for c in status["carriers"]
    ]
    lines += _table(carriers)
    m = status["messages"]
    lines += [
        "",
        f"messages: {m['queued']} queued, {m['scheduled']} scheduled, {m['retrying']} to"
        f" retry, {m['awaiting_receipts']} awaiting receipts; since start {m['failed']}"
        f" failed, {m['opted_out_when_due']} opted out while waiting,"
        f" {m['receipts_unmatched']} receipts unmatched",
    ]
    server = status["server"]
    if server is not None:
        lines += ["", f"partner sessions: {server['bound']} bound of {server['sessions']}"]
        partners = [
            {
                "partner": p["system_id"],
                "binds": p["binds"],
                "accepted": p["accepted"],
                "held": p["held"],
                "refused": p["refused"],
                "throttled": p["throttled"],
                "opted out": p["opted_out"],
                "receipts owed": p["receipts_owed"],
            }
            for p in status["partners"]
        ]
        lines += _table(partners)
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    return table_lines(list(rows[0]), [[str(v) for v in r.values()] for r in rows])
