"""Cut a byte stream into whole PDUs, whatever the chunking of the reads.

The only thing the framer reads is ``command_length`` (the first four octets of every
PDU). A length below 16 (the header) or above the configured maximum cannot be trusted
to find the next PDU, so it is a :class:`~smppgw.protocol.errors.FramingError`: the
session answers ``generic_nack`` with ``ESME_RINVCMDLEN`` and closes. The error is
sticky: the framer refuses to go on after it.

Memory: the framer holds at most one partial PDU (bounded by ``max_command_length``) plus
whatever the caller fed in one call; consumed octets are dropped in amortised O(1).
"""

from __future__ import annotations

import struct

from smppgw.protocol.errors import FramingError
from smppgw.protocol.status import CommandStatus

__all__ = ["DEFAULT_MAX_COMMAND_LENGTH", "Framer"]

#: Room for a 64 KiB ``message_payload`` plus the largest mandatory fields and header.
DEFAULT_MAX_COMMAND_LENGTH = 0x10000 + 0x400

_LENGTH = struct.Struct(">I")
_HEADER_LENGTH = 16


class Framer:
    """Incremental PDU framer: :meth:`feed` bytes, take whole PDUs with :meth:`next_frame`."""

    __slots__ = ("_buffer", "_error", "_max", "_start")

    def __init__(self, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        if max_command_length < _HEADER_LENGTH:
            raise ValueError("max_command_length must be at least 16")
        self._max = max_command_length
        self._buffer = bytearray()
        self._start = 0
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a PDU."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> None:
        """Append received octets (``b""`` is allowed and does nothing)."""
        if self._start and self._start * 2 >= len(self._buffer):
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next whole PDU's octets, or None until more octets are fed.

        Raises:
            FramingError: ``command_length`` is out of range; it carries the
                ``sequence_number`` when the header was whole. Raised again on every
                later call.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        start = self._start
        available = len(buffer) - start
        if available < 4:
            return None
        (length,) = _LENGTH.unpack_from(buffer, start)
        if length < _HEADER_LENGTH or length > self._max:
            sequence = None
            if available >= _HEADER_LENGTH:
                (sequence,) = _LENGTH.unpack_from(buffer, start + 12)
            self._error = FramingError(
                f"command_length {length} outside {_HEADER_LENGTH}..{self._max}",
                command_status=CommandStatus.ESME_RINVCMDLEN,
                sequence_number=sequence,
            )
            raise self._error
        if available < length:
            return None
        self._start = start + length
        return bytes(buffer[start : start + length])

    def frames(self) -> list[bytes]:
        """Every whole PDU now buffered (see :meth:`next_frame` for errors)."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out
