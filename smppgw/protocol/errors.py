"""The SMPP error family: every error carries the answer to send.

Following h11's ``error_status_hint``, each error names the ``command_status`` that the
session should answer with, and, where one was read, the ``sequence_number`` and
``command_id`` of the PDU that caused it. The session can therefore always reply with
``generic_nack`` or the right ``*_resp`` and carry on, without parsing error messages.

- :class:`LocalSmppError`: *we* tried something illegal (encoding a field that exceeds its
  limit, sending a PDU the session state does not allow). A bug or bad input on our side.
- :class:`RemoteSmppError`: the *peer* sent something illegal. Decoding only ever raises
  this family; a fuzz invariant in the tests holds the codec to it.
- :class:`FramingError`: a remote error after which the byte stream cannot be trusted
  (a ``command_length`` out of range): answer, then close the connection.
"""

from __future__ import annotations

__all__ = [
    "FramingError",
    "LocalSmppError",
    "PduDecodeError",
    "PduEncodeError",
    "ReceiveStateError",
    "RemoteSmppError",
    "SendStateError",
    "SmppError",
]


class SmppError(Exception):
    """Base of every SMPP error.

    Attributes:
        command_status: the SMPP status to answer with (an int, see
            :class:`smppgw.protocol.status.CommandStatus`).
        sequence_number: the sequence number of the offending PDU, if it could be read.
        command_id: the command id of the offending PDU, if it could be read.
    """

    def __init__(
        self,
        msg: str,
        *,
        command_status: int,
        sequence_number: int | None = None,
        command_id: int | None = None,
    ) -> None:
        if type(self) in (SmppError, LocalSmppError, RemoteSmppError):
            raise TypeError(f"instantiate a concrete subclass, not {type(self).__name__}")
        super().__init__(msg)
        self.command_status = command_status
        self.sequence_number = sequence_number
        self.command_id = command_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.args[0]!r}, command_status=0x{self.command_status:08X},"
            f" sequence_number={self.sequence_number}, command_id={self.command_id})"
        )


class LocalSmppError(SmppError):
    """We asked for something the protocol does not allow."""


class RemoteSmppError(SmppError):
    """The peer sent something the protocol does not allow."""


class PduEncodeError(LocalSmppError):
    """A PDU could not be encoded: a field is out of its range or over its length limit."""


class SendStateError(LocalSmppError):
    """We tried to send a PDU the session's state does not allow (``ESME_RINVBNDSTS``)."""


class ReceiveStateError(RemoteSmppError):
    """The peer sent a PDU the session's state does not allow: answer ``ESME_RINVBNDSTS``."""


class PduDecodeError(RemoteSmppError):
    """A PDU's body is malformed. The stream is still in step: answer and go on."""


class FramingError(RemoteSmppError):
    """The stream's framing is broken (bad ``command_length``): answer, then close."""
