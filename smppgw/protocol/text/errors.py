"""Errors of the text encodings: a character that cannot be encoded, names itself.

They belong to the SMPP error family (so a session can always answer with their
``command_status``) *and* to :class:`ValueError`, because for a caller outside a session
"this text does not fit that alphabet" is an ordinary bad value, and ``except ValueError``
is what such a caller writes.
"""

from __future__ import annotations

from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.status import CommandStatus

__all__ = ["TextDecodeError", "TextEncodeError"]


class TextEncodeError(PduEncodeError, ValueError):
    """A text holds a character that the chosen encoding cannot carry.

    Attributes:
        encoding: the encoding's name (``"gsm7"``, ``"ucs2"``, ``"latin1"``).
        char: the first offending character.
        index: its index in the text.
    """

    def __init__(self, encoding: str, char: str, index: int) -> None:
        super().__init__(
            f"cannot encode {char!r} (U+{ord(char):04X}) at index {index} in {encoding}",
            # We only encode our own texts (scenario replies, receipts): a failure is a
            # system error on our side, not something the partner did.
            command_status=CommandStatus.ESME_RSYSERR,
        )
        self.encoding = encoding
        self.char = char
        self.index = index


class TextDecodeError(PduDecodeError, ValueError):
    """Octets from the peer cannot be read in the declared encoding at all.

    The decoders are tolerant and rarely raise: only a request that cannot be met
    (more packed septets asked for than the octets hold) ends here.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg, command_status=CommandStatus.ESME_RINVMSGLEN)
