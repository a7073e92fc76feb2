"""Typed errors of the durable store.

Every error a caller can meet carries the SMPP ``command_status`` it should answer with
(lesson 3 of MODELS.md), so a session that journals a ``submit_sm`` can turn a store
failure into a response without knowing why the store failed:

* :class:`StoreBusy`: the writer's queue is full and the caller asked not to wait.
  Answer ``ESME_RMSGQFUL``: the partner should slow down and retry.
* :class:`StoreUnavailable`: the store cannot make anything durable right now (disk
  full, file locked by another process, I/O error, shutting down). Answer
  ``ESME_RX_T_APPN``: a temporary failure; the store probes and comes back by itself.
* :class:`StoreReadFailed`: a read failed (I/O error, a lock held past the busy
  timeout). Answer as for a failure of the command (``ESME_RQUERYFAIL`` for a
  ``query_sm``); background readers try again later. Never a crash: a read is on a
  path a partner or a carrier drives.
* :class:`StoreCorrupt` and :class:`SchemaTooNew` are raised at open only: the daemon
  must not start on such a file, an operator has to look at it.
"""

from __future__ import annotations

from smppgw.protocol.status import CommandStatus

__all__ = [
    "SchemaTooNew",
    "StoreBusy",
    "StoreCorrupt",
    "StoreError",
    "StoreReadFailed",
    "StoreUnavailable",
]


class StoreError(Exception):
    """Base class of every error the store raises on purpose.

    Attributes:
        command_status: the SMPP status a session should answer with when this error
            prevents it from acknowledging a PDU.
    """

    command_status: int = CommandStatus.ESME_RSYSERR


class StoreBusy(StoreError):
    """The writer's queue is full and the caller used ``nowait=True``."""

    command_status = CommandStatus.ESME_RMSGQFUL


class StoreReadFailed(StoreError):
    """A read on one of the store's reader connections failed; the message says why."""

    command_status = CommandStatus.ESME_RSYSERR


class StoreUnavailable(StoreError):
    """Nothing can be made durable now; the work was *not* committed.

    Args:
        reason: a short human-readable cause, e.g. ``"database or disk is full"``.
    """

    command_status = CommandStatus.ESME_RX_T_APPN

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreCorrupt(StoreError):
    """The database file failed its integrity check (or is not a database at all)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: database file is corrupt: {detail}")
        self.path = path
        self.detail = detail


class SchemaTooNew(StoreError):
    """The file was migrated by a newer smppgw than this one; refuse to touch it."""

    def __init__(self, path: str, file_version: int, code_version: int) -> None:
        super().__init__(
            f"{path}: schema version {file_version} is newer than this smppgw supports "
            f"(version {code_version}); upgrade smppgw or restore a matching backup"
        )
        self.path = path
        self.file_version = file_version
        self.code_version = code_version
