"""Interop: the PyPI ``smpplib`` client (blocking sockets, in a worker thread) against
the simulated SMSC: bind, submit, receive and answer the delivery receipt, and an MO."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

import smpplib.client
import smpplib.consts
import trio
from test_sim_smsc import running

if TYPE_CHECKING:
    from collections.abc import Callable

from smppgw.protocol.receipt import parse_receipt
from smppgw.sim import SimConfig


def _smpplib_session(port: int, inject_mo: Callable[[], object]) -> dict[str, Any]:
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    sent: list[Any] = []
    received: list[Any] = []
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        bind = client.bind_transceiver(system_id="smppgw", password="smppgw")
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="SMPPGW",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr="84912345678",
            short_message=b"hello from smpplib",
            registered_delivery=1,
        )
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            client.read_once()
        trio.from_thread.run_sync(inject_mo)
        while len(received) < 2 and time.monotonic() < deadline:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return {"bind_status": bind.status, "sent": sent, "received": received}


async def test_smpplib_binds_submits_and_gets_its_receipt() -> None:
    async with running(SimConfig(receipt_delay=0.01)) as sim:
        assert sim.port is not None
        port = sim.port
        mo = partial(sim.inject_mo, "84912345678", "8055", "Chào bạn")
        result = await trio.to_thread.run_sync(_smpplib_session, port, mo)
        assert result["bind_status"] == 0
        (resp,) = result["sent"]
        message_id = resp.message_id.decode()
        assert message_id == sim.submits[0].message_id
        receipt, mo_pdu = result["received"]
        assert receipt.receipted_message_id.decode().rstrip("\0") == message_id
        assert receipt.esm_class == 0x04
        parsed = parse_receipt(receipt.short_message)
        assert parsed.message_id == message_id
        assert parsed.stat == "DELIVRD"
        assert parsed.text == "hello from smpplib"
        await trio.sleep(0.05)
        assert sim.receipts[0].status == 0  # smpplib answered deliver_sm_resp OK
        assert sim.submits[0].source == "SMPPGW"
        assert mo_pdu.esm_class == 0
        assert mo_pdu.data_coding == 8
        assert mo_pdu.short_message.decode("utf-16-be") == "Chào bạn"
