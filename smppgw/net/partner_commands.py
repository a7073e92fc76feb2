"""The partner PDUs other than ``submit_sm`` and binds: how they map onto the gateway.

Submits in other shapes (they take the submit path: admission, quota, journal):

- ``data_sm`` (SMPP 3.4 4.7) is a submit whose text is the ``message_payload`` TLV
  (absent: ``ESME_RMISSINGOPTPARAM``). Its addresses may be 64 characters, a carrier's
  ``submit_sm`` takes 20: longer ones are refused (``ESME_RINVSRCADR`` /
  ``ESME_RINVDSTADR``). The answer is ``data_sm_resp`` with our message id.
- ``submit_multi`` (4.5) becomes one message per SME destination, each admitted,
  charged (parts x destinations) and receipted on its own. Distribution lists
  (``dest_flag`` 2) are not offered: each is unsuccessful with ``ESME_RINVDLNAME``.

Message management (4.8-4.10), only of the partner's own messages (another partner's
id is as unknown as a missing one: ``ESME_RINVMSGID``). When ``source_addr`` or
``destination_addr`` is given it must match the message's (``ESME_RINVSRCADR`` /
``ESME_RINVDSTADR``), as the spec asks:

- ``query_sm``: the journal's state as a ``message_state``.
- ``cancel_sm``: only while the message is ``held``, or ``accepted`` and waiting
  untouched in a carrier queue (taken out first, synchronously, so no sender can pick
  it up). It becomes ``rejected`` with error ``cancelled by partner`` (``query_sm``
  answers DELETED), its quota reservation is released, and no receipt is sent: the
  ``cancel_sm_resp`` is the partner's confirmation. Otherwise ``ESME_RCANCELFAIL``: a
  message being sent, retried after a failed attempt (the carrier may hold a copy), at
  a carrier or final. Cancels are not forwarded to carriers. With an empty
  ``message_id``, every one of the partner's messages from ``source_addr`` to
  ``destination_addr`` that could be cancelled by its id is (both addresses required:
  ``ESME_RINVSRCADR`` / ``ESME_RINVDSTADR``; at most 10,000 a PDU, oldest first: send
  it again for more), answered ``ESME_ROK`` when at least one was, else
  ``ESME_RCANCELFAIL``. A ``service_type`` given with it is refused
  (``ESME_RINVSERTYP``): it is not kept with a message (carriers get their own), so the
  cancel could not be held to it.
- ``replace_sm``: under the same conditions (``ESME_RREPLACEFAIL`` otherwise), the new
  text passes admission's checks (not its throttle) with the original message's
  addresses and data_coding, and replaces body, parts and receipt request; empty
  ``schedule_delivery_time``/``validity_period`` keep the original ones (4.10.1). A
  different part count swaps the quota reservation (``ESME_RX_R_APPN`` when no order
  can pay); a text the content policy holds moves the message to ``held``. A part of a
  partner's own concatenated message is not replaceable (its siblings would no longer
  match): ``ESME_RREPLACEFAIL``. The replaced message rejoins the back of its queue.

Every change is durable before it is answered: a journal that cannot write answers its
status (``ESME_RX_T_APPN``) and a withdrawn message goes back to the front of its queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from smppgw.gateway.admission import Refused
from smppgw.protocol.fields import DestFlag, UnsuccessSme
from smppgw.protocol.pdus import CancelSm, DataSm, Pdu, QuerySm, ReplaceSm, SubmitMulti, SubmitSm
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.session import make_response
from smppgw.protocol.smpp_time import format_smpp_time
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag
from smppgw.store import MessageState, QuotaRefusal, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from smppgw.gateway.admission import Admission
    from smppgw.gateway.mt import MtPipeline
    from smppgw.net.partner_stats import PartnerCounts
    from smppgw.store import Store, StoredMessage

__all__ = [
    "CANCELLED",
    "MessageCommands",
    "Multi",
    "Submit",
    "data_sm_as_submit",
    "multi_answer",
    "multi_destinations",
]

log = structlog.get_logger("smppgw.partners")

#: The error text of a message a partner cancelled (its state is ``rejected``).
CANCELLED = "cancelled by partner"
#: The longest address a carrier's submit_sm carries (SMPP 3.4 5.2.8: 21 with the NUL).
_MAX_ADDRESS = 20

#: The journal's states as ``message_state`` values (SMPP 3.4 section 5.2.28).
_QUERY_STATE = {
    "accepted": ReceiptState.ENROUTE,
    "submitted": ReceiptState.ENROUTE,
    "sent": ReceiptState.ENROUTE,  # at the carrier, no receipt asked: not known further
    "held": ReceiptState.ACCEPTED,
    "delivered": ReceiptState.DELIVERED,
    "expired": ReceiptState.EXPIRED,
    "failed": ReceiptState.UNDELIVERABLE,
    "rejected": ReceiptState.REJECTED,
}
_QUEUED = (MessageState.ACCEPTED, MessageState.HELD)
#: The most messages one ``cancel_sm`` by addresses cancels: each is read whole first.
CANCEL_BY_ADDRESSES_LIMIT = 10_000


# -- submits in other shapes ---------------------------------------------------------


def data_sm_as_submit(pdu: DataSm) -> SubmitSm | int:
    """The ``submit_sm`` a ``data_sm`` amounts to, or the status to refuse it with."""
    if pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) is None:
        return S.ESME_RMISSINGOPTPARAM
    if len(pdu.source_addr) > _MAX_ADDRESS:
        return S.ESME_RINVSRCADR
    if len(pdu.destination_addr) > _MAX_ADDRESS:
        return S.ESME_RINVDSTADR
    return SubmitSm(
        sequence_number=pdu.sequence_number,
        tlvs=pdu.tlvs,
        service_type=pdu.service_type,
        source_addr_ton=pdu.source_addr_ton,
        source_addr_npi=pdu.source_addr_npi,
        source_addr=pdu.source_addr,
        dest_addr_ton=pdu.dest_addr_ton,
        dest_addr_npi=pdu.dest_addr_npi,
        destination_addr=pdu.destination_addr,
        esm_class=pdu.esm_class,
        registered_delivery=pdu.registered_delivery,
        data_coding=pdu.data_coding,
    )


def multi_destinations(pdu: SubmitMulti) -> list[SubmitSm | UnsuccessSme]:
    """One ``submit_sm`` per SME destination of a ``submit_multi``, in order; a
    distribution list is already unsuccessful (``ESME_RINVDLNAME``: we have none)."""
    out: list[SubmitSm | UnsuccessSme] = []
    for dest in pdu.dest_addresses:
        if dest.dest_flag != DestFlag.SME_ADDRESS:
            out.append(UnsuccessSme(0, 0, dest.dl_name, S.ESME_RINVDLNAME))
            continue
        out.append(
            SubmitSm(
                sequence_number=pdu.sequence_number,
                tlvs=pdu.tlvs,
                service_type=pdu.service_type,
                source_addr_ton=pdu.source_addr_ton,
                source_addr_npi=pdu.source_addr_npi,
                source_addr=pdu.source_addr,
                dest_addr_ton=dest.dest_addr_ton,
                dest_addr_npi=dest.dest_addr_npi,
                destination_addr=dest.destination_addr,
                esm_class=pdu.esm_class,
                protocol_id=pdu.protocol_id,
                priority_flag=pdu.priority_flag,
                schedule_delivery_time=pdu.schedule_delivery_time,
                validity_period=pdu.validity_period,
                registered_delivery=pdu.registered_delivery,
                replace_if_present_flag=pdu.replace_if_present_flag,
                data_coding=pdu.data_coding,
                sm_default_msg_id=pdu.sm_default_msg_id,
                short_message=pdu.short_message,
            )
        )
    return out


@dataclass(eq=False, slots=True)
class Multi:
    """A ``submit_multi`` being answered: the ids of its accepted destinations, the
    unsuccessful ones, and a status that failed it whole (journal down, queue full)."""

    pdu: SubmitMulti
    ids: list[int] = field(default_factory=list)
    unsuccess: list[UnsuccessSme] = field(default_factory=list)
    failed: int | None = None


@dataclass(frozen=True, slots=True)
class Submit:
    """One message to admit: ``submit`` is checked and journaled, ``request`` answered
    (unless the message is one destination of ``multi``, answered as a whole)."""

    request: Pdu
    submit: SubmitSm
    multi: Multi | None = None


def multi_answer(multi: Multi) -> Pdu:
    """``submit_multi_resp``: the first accepted destination's id and the unsuccessful
    ones (SMPP 3.4 4.5.2). With none accepted, the status of the PDU's failure or of the
    first refused destination, the list still given."""
    unsuccess = tuple(multi.unsuccess)
    if multi.ids:
        return make_response(multi.pdu, message_id=str(multi.ids[0]), unsuccess_smes=unsuccess)
    if multi.failed is not None:
        status = multi.failed
    elif unsuccess:
        status = unsuccess[0].error_status_code
    else:
        status = S.ESME_RINVNUMDESTS  # no destination at all
    return make_response(multi.pdu, status, unsuccess_smes=unsuccess)


# -- message management ----------------------------------------------------------------


class MessageCommands:
    """``query_sm``, ``cancel_sm`` and ``replace_sm`` of bound partners (see the module
    docstring for what each may do).

    Args:
        store, pipeline, admission: the journal, the carrier queues, the checks.
        payers: whose orders may pay for a partner's message (the server's chain).
        metered: whether quota applies to a partner.
        counts: a partner's counters.
    """

    def __init__(
        self,
        store: Store,
        pipeline: MtPipeline,
        admission: Admission,
        *,
        payers: Callable[[str], tuple[str, ...]],
        metered: Callable[[str], bool],
        counts: Callable[[str], PartnerCounts],
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.admission = admission
        self._payers = payers
        self._metered = metered
        self._counts = counts

    async def answer(self, system_id: str, pdu: QuerySm | CancelSm | ReplaceSm) -> Pdu:
        """The response to one of these PDUs of ``system_id``; counted per partner."""
        if isinstance(pdu, QuerySm):
            name, resp = "query_sm", await self.query(system_id, pdu)
        elif isinstance(pdu, CancelSm):
            name, resp = "cancel_sm", await self.cancel(system_id, pdu)
        else:
            name, resp = "replace_sm", await self.replace(system_id, pdu)
        self._counts(system_id).command(name, resp.command_status == 0)
        return resp

    async def _own(
        self, system_id: str, pdu: QuerySm | CancelSm | ReplaceSm, fail: int
    ) -> StoredMessage | Pdu:
        """The partner's message ``pdu.message_id``, or the response refusing the PDU."""
        try:
            message_id = int(pdu.message_id)
        except ValueError:
            return make_response(pdu, S.ESME_RINVMSGID)
        try:
            stored = await self.store.get_message(message_id)
        except StoreError:
            return make_response(pdu, fail)
        if stored is None or stored.partner != system_id:
            # Another partner's message is as unknown as a missing one.
            return make_response(pdu, S.ESME_RINVMSGID)
        if pdu.source_addr and pdu.source_addr.casefold() != stored.source_addr.casefold():
            return make_response(pdu, S.ESME_RINVSRCADR)
        destination = getattr(pdu, "destination_addr", "")
        if destination and destination.removeprefix("+") != stored.destination_addr:
            return make_response(pdu, S.ESME_RINVDSTADR)
        return stored

    async def query(self, system_id: str, pdu: QuerySm) -> Pdu:
        """``query_sm``: the state of one of the partner's own messages (SMPP 3.4 4.8)."""
        stored = await self._own(system_id, pdu, S.ESME_RQUERYFAIL)
        if isinstance(stored, Pdu):
            return stored
        state = _QUERY_STATE.get(str(stored.state), ReceiptState.UNKNOWN)
        if stored.state is MessageState.REJECTED and stored.error == CANCELLED:
            state = ReceiptState.DELETED
        final = state not in (ReceiptState.ENROUTE, ReceiptState.ACCEPTED)
        return make_response(
            pdu,
            message_id=pdu.message_id,
            final_date=(
                format_smpp_time(datetime.fromtimestamp(stored.updated_at, tz=UTC)) if final else ""
            ),
            message_state=int(state),
            error_code=(stored.final_status or 0) & 0xFF,
        )

    async def cancel(self, system_id: str, pdu: CancelSm) -> Pdu:
        """``cancel_sm`` of one message still waiting here (SMPP 3.4 4.9), or, without
        a message id, of the partner's messages between the two addresses (4.9.1)."""
        if not pdu.message_id:
            return await self._cancel_by_addresses(system_id, pdu)
        stored = await self._own(system_id, pdu, S.ESME_RCANCELFAIL)
        if isinstance(stored, Pdu):
            return stored
        status = await self._cancel_found(system_id, [stored])
        return make_response(pdu, status)

    async def _cancel_by_addresses(self, system_id: str, pdu: CancelSm) -> Pdu:
        if not pdu.source_addr:
            return make_response(pdu, S.ESME_RINVSRCADR)
        if not pdu.destination_addr:
            return make_response(pdu, S.ESME_RINVDSTADR)
        if pdu.service_type:
            return make_response(pdu, S.ESME_RINVSERTYP)
        try:
            found = await self.store.queued_by_addresses(
                system_id,
                pdu.source_addr,
                pdu.destination_addr.removeprefix("+"),
                CANCEL_BY_ADDRESSES_LIMIT,
            )
        except StoreError:
            return make_response(pdu, S.ESME_RCANCELFAIL)
        return make_response(pdu, await self._cancel_found(system_id, found))

    async def _cancel_found(self, system_id: str, found: Sequence[StoredMessage]) -> int:
        """Cancel those of ``found`` still waiting here (held, or queued untouched:
        taken out of the carrier queues first, synchronously); the status to answer:
        ``ESME_ROK`` when at least one was, else why not. One that the journal did not
        cancel goes back in its place."""
        withdrawn = self.pipeline.withdraw_many(
            [m for m in found if m.state is MessageState.ACCEPTED]
        )
        items = [
            (m.id, m.state) for m in found if m.id in withdrawn or m.state is MessageState.HELD
        ]
        status: int = S.ESME_RCANCELFAIL
        done = [False] * len(items)
        if items:
            try:
                done = await self.store.cancel_queued_many(items, CANCELLED)
            except StoreError as exc:
                status = exc.command_status
        ids: list[int] = []
        # Back in their order: each goes to the front of its queue.
        for (message_id, _), cancelled in reversed(list(zip(items, done, strict=True))):
            if cancelled:
                ids.append(message_id)
            elif message_id in withdrawn:
                self.pipeline.put_back(withdrawn[message_id])
        if not ids:
            return status
        ids.reverse()
        log.info("cancelled by partner", system_id=system_id, message_ids=ids[:20], count=len(ids))
        return S.ESME_ROK

    async def replace(self, system_id: str, pdu: ReplaceSm) -> Pdu:
        """``replace_sm`` of one message still waiting here (SMPP 3.4 4.10)."""
        stored = await self._own(system_id, pdu, S.ESME_RREPLACEFAIL)
        if isinstance(stored, Pdu):
            return stored
        if stored.state not in _QUEUED or stored.esm_class & 0x40:
            return make_response(pdu, S.ESME_RREPLACEFAIL)
        verdict = self.admission.check_replace(
            system_id,
            SubmitSm(
                sequence_number=pdu.sequence_number,
                tlvs=pdu.tlvs,
                source_addr_ton=stored.source_ton,
                source_addr_npi=stored.source_npi,
                source_addr=stored.source_addr,
                dest_addr_ton=stored.dest_ton,
                dest_addr_npi=stored.dest_npi,
                destination_addr=stored.destination_addr,
                esm_class=stored.esm_class,
                protocol_id=stored.protocol_id,
                schedule_delivery_time=pdu.schedule_delivery_time,
                validity_period=pdu.validity_period,
                registered_delivery=pdu.registered_delivery,
                data_coding=stored.data_coding,
                short_message=pdu.short_message,
            ),
        )
        if isinstance(verdict, Refused):
            return make_response(pdu, verdict.status)
        new = replace(
            verdict.message,
            expires_at=verdict.message.expires_at if pdu.validity_period else stored.expires_at,
            next_attempt_at=verdict.message.next_attempt_at
            if pdu.schedule_delivery_time
            else stored.next_attempt_at,
            held=verdict.hold,
            user_ref=stored.user_ref,
        )
        outbound = None
        if stored.state is MessageState.ACCEPTED:
            outbound = self.pipeline.withdraw(stored)
            if outbound is None:
                return make_response(pdu, S.ESME_RREPLACEFAIL)
        try:
            result = await self.store.replace_queued(
                stored.id,
                stored.state,
                new,
                verdict.parts if self._metered(system_id) else None,
                payers=self._payers(system_id),
            )
        except StoreError as exc:
            result, status = False, exc.command_status
        else:
            status = S.ESME_RX_R_APPN if isinstance(result, QuotaRefusal) else S.ESME_RREPLACEFAIL
        if result is not True:
            if outbound is not None:
                self.pipeline.put_back(outbound)
            return make_response(pdu, status)
        if outbound is not None and not new.held:
            outbound.parts = new.parts or (new.body,)
            outbound.registered_delivery = new.registered_delivery
            outbound.expires_at = new.expires_at
            outbound.not_before = new.next_attempt_at  # the new schedule, or the old one
            self.pipeline.enqueue(outbound)
        log.info(
            "message replaced by partner", system_id=system_id, message_id=stored.id, held=new.held
        )
        return make_response(pdu)
