"""The peer's requests we still have to answer, by sequence number.

Split from ``session.py``; the session asks this which request a response it is about to
send answers. Two cases make it more than a dict, both found by fuzzing:

- a PDU refused on receipt (malformed, out of state) is owed an error answer that must
  not be taken for the answer to a request the peer gave the same sequence number;
- a peer reusing the sequence number of a request still owed: the second request is owed
  after the first, and the answers may come in either order.

Sans-I/O, no time: only sequence numbers and PDU classes.
"""

from __future__ import annotations

from smppgw.protocol.pdus import RESPONSE_CLASS, GenericNack, Pdu

__all__ = ["OwedAnswers"]


class OwedAnswers:
    def __init__(self) -> None:
        self._owed: dict[int, type[Pdu]] = {}
        self._more: dict[int, list[type[Pdu]]] = {}
        self._refused: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._owed) + sum(map(len, self._more.values()))

    def refused(self, seq: int | None) -> None:
        """A PDU with ``seq`` was refused on receipt: an error answer is due."""
        if seq is not None:
            self._refused[seq] = self._refused.get(seq, 0) + 1

    def received(self, seq: int, cls: type[Pdu]) -> None:
        """The peer's request ``cls`` with ``seq`` was taken: its answer is owed."""
        if cls not in RESPONSE_CLASS:
            return
        if seq in self._owed:
            self._more.setdefault(seq, []).append(cls)
        else:
            self._owed[seq] = cls

    def is_refusal_answer(self, response: Pdu) -> bool:
        """``response`` is the error answer to a PDU refused on receipt: it answers no
        owed request, even one with the same number (:meth:`refusal_answered` once sent)."""
        if response.command_status == 0 and type(response) is not GenericNack:
            return False
        return bool(self._refused.get(response.sequence_number))

    def refusal_answered(self, seq: int) -> None:
        refused = self._refused[seq]
        if refused == 1:
            del self._refused[seq]
        else:
            self._refused[seq] = refused - 1

    def answered_by(self, response: Pdu) -> type[Pdu] | None:
        """The owed request ``response`` would answer (None: none owed with its number).
        Among requests sharing the number, the one whose answer class it is."""
        seq = response.sequence_number
        cls = type(response)
        owed = self._owed.get(seq)
        more = self._more.get(seq)
        if owed is not None and more and cls is not GenericNack and RESPONSE_CLASS[owed] is not cls:
            # Answers to requests sharing a sequence number may come in any order.
            for i, other in enumerate(more):
                if RESPONSE_CLASS[other] is cls:
                    more[i], owed = owed, other
                    self._owed[seq] = owed
                    break
        return owed

    def settle(self, seq: int) -> None:
        """The request owed with ``seq`` (as :meth:`answered_by` said) was answered."""
        del self._owed[seq]
        more = self._more.get(seq)
        if more:
            self._owed[seq] = more.pop(0)
            if not more:
                del self._more[seq]
