"""Admin socket commands for operator imports, run by the daemon that owns the store.

While the daemon runs, its store has the file's only writer (a lock file keeps others
out), so ``smppgw import`` sends its request here instead of opening the file itself.

Commands (see :func:`register_import_commands`):

- ``{"cmd": "import.<kind>", "path": "/abs/file.xlsx", "partial": false,
  "campaign": null, "skip_existing": false, "sheet": null, "job": "<token>"}``
  -> ``{"ok": true, "job": ..., "report": {...}}`` (``ImportReport.to_json``);
  kinds: members, spend, codes, gifts, profiles.
- ``{"cmd": "import.status", "job": "<token>"}`` -> ``{"ok": true, "state": "running" |
  "done" | "failed", "rows_read": n, "report": {...} | null, "error": ...}``
- ``{"cmd": "inventory.stats"}`` -> ``{"ok": true, "stats": {...}}``

Why jobs and a status command: the admin server gives a request 10 seconds, and a
500k-row file takes longer. The import itself runs shielded from that deadline (an
import cut halfway would leave the operator not knowing what was written; the write is
one transaction either way), and its outcome is kept under the job token the client
chose, which the client polls after its connection was closed without an answer. The
polling also gives the CLI its progress line. One import runs at a time: each holds
its file's records in memory, and the writer would serialise them anyway.
"""

from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.imports.run import ImportFailed, ImportKind, inventory_stats, run_import
from smppgw.store.errors import StoreError

if TYPE_CHECKING:
    from smppgw.app.admin import AdminCommands
    from smppgw.imports.run import ImportReport
    from smppgw.scenarios.member_id import MemberIdFormat
    from smppgw.store import Store

__all__ = ["register_import_commands"]

log = structlog.get_logger("smppgw.imports")

#: Finished jobs remembered for ``import.status``.
_KEEP_JOBS = 32


@dataclass(slots=True)
class _Job:
    kind: str
    path: str
    rows_read: int = 0
    report: ImportReport | None = None
    error: str | None = None

    def status(self) -> dict[str, Any]:
        state = "failed" if self.error else "done" if self.report else "running"
        return {
            "ok": True,
            "state": state,
            "kind": self.kind,
            "path": self.path,
            "rows_read": self.rows_read,
            "report": self.report.to_json() if self.report else None,
            "error": self.error,
        }


class _Imports:
    def __init__(self, store: Store, member_ids: MemberIdFormat | None) -> None:
        self.store = store
        self.member_ids = member_ids
        self.jobs: OrderedDict[str, _Job] = OrderedDict()
        self.running: str | None = None

    async def run(self, kind: ImportKind, request: dict[str, Any]) -> dict[str, Any]:
        path = request.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError("path: give the file's absolute path")
        campaign = request.get("campaign")
        if campaign is not None and not isinstance(campaign, str):
            raise ValueError("campaign: a string or null")
        sheet = request.get("sheet")
        if sheet is not None and not isinstance(sheet, str):
            raise ValueError("sheet: a string or null")
        token = str(request.get("job") or uuid.uuid4().hex)
        if self.running is not None:
            raise ValueError(f"an import is already running (job {self.running})")
        if token in self.jobs:
            raise ValueError(f"job {token} exists already")
        job = self.jobs[token] = _Job(kind.value, path)
        while len(self.jobs) > _KEEP_JOBS:
            self.jobs.popitem(last=False)
        self.running = token

        def progress(rows: int) -> None:
            job.rows_read = rows

        try:
            with trio.CancelScope(shield=True):
                report = await run_import(
                    self.store,
                    kind,
                    path,
                    partial=bool(request.get("partial", False)),
                    campaign=campaign,
                    member_ids=self.member_ids,
                    progress=progress,
                    skip_existing=bool(request.get("skip_existing", False)),
                    sheet=sheet,
                )
        except (ImportFailed, StoreError) as exc:
            job.error = str(exc)
            raise ValueError(str(exc)) from None
        finally:
            self.running = None
        job.report = report
        job.rows_read = report.rows_read
        log.info(
            "import finished",
            kind=kind.value,
            file=path,
            rows=report.rows_read,
            imported=report.imported,
            updated=report.updated,
            refused=report.error_count,
            committed=report.committed,
        )
        return {"ok": True, "job": token, "report": report.to_json()}

    async def status(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(str(request.get("job")))
        if job is None:
            raise ValueError(f"unknown job {request.get('job')!r}")
        return job.status()

    async def stats(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "stats": await inventory_stats(self.store)}


def register_import_commands(
    commands: AdminCommands, store: Store, member_ids: MemberIdFormat | None
) -> None:
    """Add ``import.<kind>``, ``import.status`` and ``inventory.stats`` to the socket.

    Args:
        member_ids: the configured pattern for new members' IDs (None: eight digits).
    """
    imports = _Imports(store, member_ids)
    for kind in ImportKind:

        async def run(request: dict[str, Any], kind: ImportKind = kind) -> dict[str, Any]:
            return await imports.run(kind, request)

        commands.register(f"import.{kind.value}", run)
    commands.register("import.status", imports.status)
    commands.register("inventory.stats", imports.stats)
