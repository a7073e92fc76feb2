"""The HTTP charging task: posts the charge requests airtime steps queued, marks them done.

The other half of :class:`smppgw.scenarios.charging.HttpCharging` (read its docstring
for why an outbox). A step records ``charge_request`` rows in its transaction; this task,
outside any transaction, posts each one::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: advance:12:credit
    {"op": "credit", "msisdn": "849...", "amount": 10000, "ref": "advance:12:credit",
     "reason": "advance"}

and settles it by the answer:

* 2xx, or 409 (the key was applied before): done;
* another 4xx: refused for good. It is done too, and compensated in the same
  transaction: a refused credit cancels its advance (the subscriber never got the
  money) and drops the debits queued to recover it; a refused debit re-opens the debt
  it was meant to pay;
* no answer, 408, 425, 429 or 5xx: left pending and posted again after a back-off, with
  the same idempotency key, so a request whose answer was lost is not applied twice.

Requests of one subscriber go in order (a debit never overtakes its advance's credit):
after a failure or a refusal the pass skips that number's later requests. Crashing at any
point loses nothing: a request is pending until its settlement commits.

Only the standard library speaks HTTP (``http.client``, in a worker thread); the daemon
starts :func:`run_http_charging` when a scenario sets ``charging: {http: ...}``.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
import trio

from smppgw.store import StoreError
from smppgw.store.airtime import (
    ChargeRequest,
    finish_charge_request,
    pending_charge_requests,
    undo_recovery,
    void_advance,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from smppgw.store import Store

__all__ = [
    "ChargingStatistics",
    "PostResult",
    "deliver_pending",
    "post_charge",
    "run_http_charging",
    "settle_kind",
]

log = structlog.get_logger("smppgw.charging")

#: Answers that mean "try again later" (besides no answer and every 5xx).
RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class PostResult:
    """The charging system's answer: ``status`` None when there was none."""

    status: int | None
    detail: str


@dataclass(slots=True)
class ChargingStatistics:
    """Counters since start (read by the metrics collector)."""

    done: int = 0
    refused: int = 0
    retried: int = 0


def settle_kind(status: int | None) -> str:
    """``done``, ``refused`` or ``retry`` for an HTTP status (None: no answer)."""
    if status is None or status in RETRYABLE or status >= 500:
        return "retry"
    if 200 <= status < 300 or status == 409:
        return "done"
    return "refused"


def post_charge(url: str, request: ChargeRequest, timeout: float) -> PostResult:
    """POST one request (blocking: run it in a worker thread)."""
    parts = urlsplit(url)
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    body = json.dumps(
        {
            "op": request.op,
            "msisdn": request.msisdn,
            "amount": request.amount,
            "ref": request.ref,
            "reason": request.reason,
        }
    ).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = conn_cls(parts.netloc, timeout=timeout)
    try:
        conn.request(
            "POST",
            path,
            body,
            {"Content-Type": "application/json", "Idempotency-Key": request.ref},
        )
        response = conn.getresponse()
        detail = response.read(500).decode("utf-8", "replace")
        return PostResult(response.status, detail)
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _settle(
    conn: sqlite3.Connection, request: ChargeRequest, kind: str, detail: str, now: float
) -> bool:
    """Record the attempt; compensate a refusal. False if a refused debit could not be
    re-opened (a newer advance is outstanding: the operator must reconcile)."""
    finish_charge_request(
        conn, request.id, status=kind, detail=detail, now=now, done=kind != "retry"
    )
    if kind != "refused" or request.advance_id is None:
        return True
    if request.op == "credit":
        void_advance(conn, request.advance_id, now)
        return True
    return undo_recovery(conn, request.advance_id, request.amount)


async def deliver_pending(
    store: Store,
    url: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
    http_timeout: float = 10.0,
    limit: int = 50,
    stats: ChargingStatistics | None = None,
    poster: Callable[[str, ChargeRequest, float], PostResult] = post_charge,
) -> ChargingStatistics:
    """One pass over up to ``limit`` pending requests; returns what this pass did.

    ``url`` sends every request there (an endpoint that moved); None: where each was
    recorded. ``http_timeout`` bounds each socket operation of a post (the post runs in
    a thread, abandoned if this task is cancelled: its request stays pending).
    """
    done = ChargingStatistics()
    requests = await store.read(partial(pending_charge_requests, limit=limit))
    blocked: set[str] = set()
    for request in requests:
        if request.msisdn in blocked:
            continue
        target = url or request.url
        if target is None:
            result = PostResult(400, "no charging URL recorded and none configured")
        else:
            result = await trio.to_thread.run_sync(
                poster, target, request, http_timeout, abandon_on_cancel=True
            )
        kind = settle_kind(result.status)
        bound = log.bind(ref=request.ref, op=request.op, status=result.status)
        reopened = await store.run_in_transaction(
            partial(_settle, request=request, kind=kind, detail=result.detail, now=clock())
        )
        if kind != "done":  # the number's later requests wait for the next pass, which
            blocked.add(request.msisdn)  # sees what this settlement changed (dropped debits)
        if kind == "retry":
            done.retried += 1
            bound.warning("charging request failed; will retry", detail=result.detail)
        elif kind == "refused":
            done.refused += 1
            bound.error(
                "charging system refused a request; compensated",
                detail=result.detail,
                advance=request.advance_id,
                reconcile_by_hand=not reopened,
            )
        else:
            done.done += 1
            bound.debug("charging request done")
    if stats is not None:
        stats.done += done.done
        stats.refused += done.refused
        stats.retried += done.retried
    return done


async def run_http_charging(
    store: Store,
    url: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
    http_timeout: float = 10.0,
    poll_interval: float = 1.0,
    max_backoff: float = 60.0,
    stats: ChargingStatistics | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Post pending charge requests until cancelled (see the module docstring).

    Polls every ``poll_interval`` while idle; after a pass with failures, waits a
    back-off that doubles (with jitter) up to ``max_backoff`` and resets on a clean pass.
    """
    backoff = poll_interval
    task_status.started()
    while True:
        try:
            result = await deliver_pending(
                store, url, clock=clock, http_timeout=http_timeout, stats=stats
            )
        except StoreError as exc:  # the journal refuses work now: a failed pass
            log.warning("charge requests not read or settled; trying again", error=str(exc))
            backoff = min(max_backoff, backoff * 2)
            await trio.sleep(backoff * random.uniform(0.5, 1.0))
            continue
        if result.retried:
            backoff = min(max_backoff, backoff * 2)
            await trio.sleep(backoff * random.uniform(0.5, 1.0))  # jitter only
            continue
        backoff = poll_interval
        if not (result.done or result.refused):
            await trio.sleep(poll_interval)
