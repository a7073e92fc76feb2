"""Checking a partner's bind: one check at a time per peer address, a growing delay for
an address that keeps failing, and the password hashes checked in worker threads, a few
at once.

Part of the partner server (``net/partner_server.py``, which answers the bind and opens
the session), kept apart because it is the server's defence against guessing and bind
floods, a concern of its own. The decisions themselves (hash, allow-list, bind cap,
delays) are the authenticator's (``smppgw.gateway.auth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from smppgw.gateway.auth import Authenticator
    from smppgw.protocol.pdus import BindReceiver, BindTransceiver, BindTransmitter

__all__ = ["PASSWORD_CHECKS_AT_ONCE", "BindChecks"]

#: Concurrent scrypt password checks (each ~16 MiB, ~50 ms): more would only queue on
#: two cores anyway, and this caps the memory a bind flood can take.
PASSWORD_CHECKS_AT_ONCE = 4


@dataclass(slots=True)
class _AddressGate:
    lock: trio.Lock = field(default_factory=trio.Lock)
    users: int = 0


class BindChecks:
    """The bind checks of one server (see the module docstring)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.auth = authenticator
        #: Password checks (scrypt) running at once, at most.
        self._password_checks = trio.CapacityLimiter(PASSWORD_CHECKS_AT_ONCE)
        #: Bind checks in progress per peer address; gone when unused.
        self._address_gates: dict[str, _AddressGate] = {}

    async def check(
        self, peer_ip: str, pdu: BindTransmitter | BindReceiver | BindTransceiver
    ) -> int:
        """The authenticator's verdict on ``pdu`` from ``peer_ip``: 0, or the status to
        refuse it with."""
        # One bind check at a time per address: parallel connections from one guesser
        # queue behind each other's delays instead of multiplying its guessing rate.
        gate = self._address_gates.setdefault(peer_ip, _AddressGate())
        gate.users += 1
        try:
            async with gate.lock:
                delay = self.auth.bind_delay(peer_ip, trio.current_time())
                if delay > 0:
                    await trio.sleep(delay)
                # scrypt takes ~16 MiB and ~50 ms a check: a burst of binds must queue,
                # not allocate hundreds of MiB at once (found by the fuzz tests).
                status: int = await trio.to_thread.run_sync(
                    self.auth.check_bind,
                    pdu.system_id,
                    pdu.password,
                    peer_ip,
                    trio.current_time(),
                    limiter=self._password_checks,
                )
        finally:
            gate.users -= 1
            if gate.users == 0:
                self._address_gates.pop(peer_ip, None)
        return status
