"""Faults the simulated SMSC can play, changeable while it runs.

Every fault is a plain field of :class:`Faults`; the simulator reads them on every PDU,
so a test (or ``POST /faults`` on the control endpoint) can switch one on or off at any
moment. Counting is deterministic, so tests can assert exact numbers:

- ``throttle_every=N``: the simulator's N-th, 2N-th... submit (counted over all
  sessions, from the start or from the last :meth:`Faults.update` that set a counting
  fault) is answered ``ESME_RTHROTTLED``.
- ``queue_full_every=M``: likewise every M-th with ``ESME_RMSGQFUL`` (throttling wins
  when both hit the same submit).
- ``response_delay``: seconds every submit response waits before it is sent (the session
  keeps reading: responses are delayed, not serialised).
- ``drop_after=N``: a session answers N submits, then its TCP connection is cut (after
  the N-th answer is written). Later submits on it are never answered.
- ``refuse_binds``: every bind gets ``ESME_RBINDFAIL``.
- ``ignore_enquire_link``: ``enquire_link`` is never answered (the peer's keep-alive
  should declare the link dead).
- ``never_answer``: submits are recorded but never answered (response timeouts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FaultError", "FaultStream", "Faults"]

#: command_id of ``enquire_link_resp``, as it stands in octets 4..8 of a PDU.
_ENQUIRE_LINK_RESP: Final = (0x80000015).to_bytes(4, "big")


class FaultError(ValueError):
    """An unknown fault name or a value of the wrong type or range."""


_INT_FIELDS = ("throttle_every", "queue_full_every", "drop_after")
_BOOL_FIELDS = ("refuse_binds", "ignore_enquire_link", "never_answer")


@dataclass(slots=True)
class Faults:
    """The faults in force; mutable on purpose (see the module docstring)."""

    throttle_every: int = 0
    queue_full_every: int = 0
    response_delay: float = 0.0
    drop_after: int = 0
    refuse_binds: bool = False
    ignore_enquire_link: bool = False
    never_answer: bool = False
    #: Submits counted for ``throttle_every``/``queue_full_every``.
    counted: int = dataclasses.field(default=0, repr=False)

    def next_submit_status(self) -> int:
        """Count one submit; the status to answer it with: OK or a refusal."""
        self.counted += 1
        n = self.counted
        if self.throttle_every and n % self.throttle_every == 0:
            return CommandStatus.ESME_RTHROTTLED
        if self.queue_full_every and n % self.queue_full_every == 0:
            return CommandStatus.ESME_RMSGQFUL
        return CommandStatus.ESME_ROK

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` (JSON-like values) all at once, or none if one is invalid.

        Raises:
            FaultError: an unknown name, or a value of the wrong type or range.
        """
        new = dataclasses.replace(self)
        for name, value in changes.items():
            if name in _INT_FIELDS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise FaultError(f"{name} must be an integer >= 0, got {value!r}")
            elif name in _BOOL_FIELDS:
                if not isinstance(value, bool):
                    raise FaultError(f"{name} must be true or false, got {value!r}")
            elif name == "response_delay":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise FaultError(f"response_delay must be seconds >= 0, got {value!r}")
                value = float(value)
            else:
                known = ", ".join(f.name for f in dataclasses.fields(self) if f.name != "counted")
                raise FaultError(f"unknown fault {name!r} (known: {known})")
            setattr(new, name, value)
        if "throttle_every" in changes or "queue_full_every" in changes:
            new.counted = 0
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(new, field.name))

    def to_dict(self) -> dict[str, Any]:
        """The faults as JSON-ready values (without the counter)."""
        out = dataclasses.asdict(self)
        del out["counted"]
        return out


class FaultStream(trio.abc.Stream):
    """The simulator's side of a connection, playing the faults that live below SMPP.

    ``SmppLink`` answers ``enquire_link`` itself, so ``ignore_enquire_link`` is played
    here: the link's writer only ever writes whole PDUs, so the outgoing octets can be
    cut into PDUs and the ``enquire_link_resp`` ones left out. :meth:`cut_after_next_write`
    plays ``drop_after``: the connection is closed once the write that carries the
    answers queued so far has gone out.
    """

    def __init__(self, inner: trio.abc.Stream, faults: Faults) -> None:
        self.inner = inner
        self._faults = faults
        self._writes_started = 0
        self._cut_after: int | None = None
        self.cut = False

    def cut_after_next_write(self) -> None:
        """Close the connection after the next write that starts from now on."""
        if self._cut_after is None:
            self._cut_after = self._writes_started + 1

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._faults.ignore_enquire_link:
            data = _without_enquire_link_resp(bytes(data))
        self._writes_started += 1
        number = self._writes_started
        if data:
            await self.inner.send_all(data)
        if self._cut_after is not None and number >= self._cut_after:
            self.cut = True
            await trio.aclose_forcefully(self.inner)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _without_enquire_link_resp(data: bytes) -> bytes:
    if _ENQUIRE_LINK_RESP not in data:
        return data
    kept: list[bytes] = []
    offset = 0
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        if length < 16:  # not PDU-aligned after all: leave the rest alone
            break
        if data[offset + 4 : offset + 8] != _ENQUIRE_LINK_RESP:
            kept.append(data[offset : offset + length])
        offset += length
    kept.append(data[offset:])
    return b"".join(kept)
