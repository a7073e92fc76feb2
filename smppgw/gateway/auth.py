"""Partner binds: password hashes, the bind verdict, bind caps and brute-force delays.

Theory of operation
-------------------
The config holds no partner password, only its scrypt hash (``smppgw hash-password``
prints one). A bind is decided by :meth:`Authenticator.check_bind`, in this order:

1. unknown or disabled ``system_id`` -> ``ESME_RINVSYSID``;
2. peer address outside the partner's ``allowed_networks`` -> ``ESME_RBINDFAIL``
   (checked before the password, so an address that may not bind at all costs no
   scrypt and learns nothing about the password);
3. wrong password -> ``ESME_RINVPASWD``;
4. the partner already holds ``max_binds`` live binds -> ``ESME_RBINDFAIL``.

Refusals 1-3 count as failures of the peer address; after ``failures_before_delay`` of
them, :meth:`Authenticator.bind_delay` asks the server to wait before answering that
address's next bind: 1 s, 2 s, 4 s, ... up to ``delay_max``. A successful bind resets
the count; an address with no failure for ``failure_ttl`` seconds is forgotten. At most
``max_tracked`` addresses are remembered (the oldest failure is dropped first), so a
scan from many addresses costs bounded memory. IPv6 peers are tracked by their /64:
one host owns a whole /64 and could otherwise rotate through it.

A bind-cap refusal is not a failure: the credentials were right.

Sans-I/O: times are the ``now`` the caller passes (any monotonic clock, the same one
for every call). Verifying a hash costs ~50 ms of CPU, so the server runs
:meth:`check_bind` in a worker thread; the counters are guarded by a lock for that.

Plaintext passwords are never stored or logged here: they are only handed to
:func:`verify_password`.

Verified passwords are remembered, keyed: after a partner's password passed scrypt
once, the next bind with the same password and the same hash is accepted on an
HMAC-SHA256 (a key drawn at start, in memory only) of hash and password, in
microseconds. A partner's binds reconnecting after a network blip (or a benchmark's
sessions) would otherwise cost 50 ms of a core each, while traffic flows: four binds
put the first 200 ms of load at 10-20 ms latency. Wrong passwords never reach the
memo (each guess still pays scrypt and the delays above); a changed hash (a new
password from the CLI, a reload) no longer matches it; one entry per configured
partner. What it gives up: a process memory dump holds, beside the key, a fast hash
of each bound partner's password instead of only the slow one (the same dump holds
live binds' passwords in flight anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "Authenticator",
    "AuthenticatorStatistics",
    "BindPolicy",
    "check_password_hash",
    "hash_password",
    "verify_password",
]

#: scrypt cost parameters of new hashes: 16 MiB and ~50 ms per verification.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
#: Largest scrypt memory (128 * n * r octets) a configured hash may ask for.
_MAX_SCRYPT_MEMORY = 64 * 1024 * 1024
_HASH_SHAPE = re.compile(
    r"scrypt\$([0-9]{1,10})\$([0-9]{1,3})\$([0-9]{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})",
    re.ASCII,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BindPolicy(Protocol):
    """What the authenticator reads of a partner (``smppgw.app`` ``PartnerSettings``)."""

    @property
    def password_hash(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def allowed_networks(self) -> Sequence[Network]: ...
    @property
    def max_binds(self) -> int: ...


# -- password hashes --------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Hash ``password`` as ``scrypt$16384$8$1$<salt b64>$<hash b64>``.

    Args:
        password: the partner's SMPP password.
        salt: 16 random octets by default; pass one only for reproducible tests.
    """
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=_HASH_BYTES,
        maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _parse_hash(encoded: str) -> _Hash:
    match = _HASH_SHAPE.fullmatch(encoded)
    if match is None:
        raise ValueError(
            "not a password hash: expected scrypt$N$r$p$<salt>$<hash> (smppgw hash-password)"
        )
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if n < 2 or n & (n - 1):
        raise ValueError(f"scrypt N must be a power of 2 above 1, got {n}")
    if not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError(f"scrypt r={r}, p={p} out of range (r 1-64, p 1-16)")
    if 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise ValueError(f"scrypt N={n}, r={r} needs more than {_MAX_SCRYPT_MEMORY >> 20} MiB")
    try:
        salt = base64.b64decode(match.group(4), validate=True)
        digest = base64.b64decode(match.group(5), validate=True)
    except binascii.Error:
        raise ValueError("the salt or hash is not valid base64") from None
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("the salt (>= 8 octets) or hash (>= 16 octets) is too short")
    return _Hash(n, r, p, salt, digest)


def check_password_hash(encoded: str) -> str:
    """Return ``encoded`` if it is a usable hash; ValueError saying why not (config checks)."""
    _parse_hash(encoded)
    return encoded


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash ``encoded``; a malformed hash matches nothing."""
    try:
        h = _parse_hash(encoded)
    except ValueError:
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=h.salt,
        n=h.n,
        r=h.r,
        p=h.p,
        dklen=len(h.digest),
        maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024,
    )
    return hmac.compare_digest(digest, h.digest)


# -- the authenticator ------------------------------------------------------------------


def _address(peer_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _tracking_key(peer_ip: str) -> str:
    address = _address(peer_ip)
    if address is None:
        return peer_ip
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class AuthenticatorStatistics:
    live_binds: dict[str, int]
    tracked_addresses: int
    accepted: int
    refused: dict[int, int]


class Authenticator:
    """Decides partner binds and counts live binds and failed attempts.

    Args:
        partners: partner settings by ``system_id``.
        failures_before_delay: failures of an address answered without delay.
        delay_max: the longest delay, in seconds.
        base_delay: the first delay; each further failure doubles it.
        failure_ttl: seconds after its last failure that an address is forgotten.
        max_tracked: the most addresses remembered at once.
    """

    def __init__(
        self,
        partners: Mapping[str, BindPolicy],
        *,
        failures_before_delay: int = 3,
        delay_max: float = 30.0,
        base_delay: float = 1.0,
        failure_ttl: float = 900.0,
        max_tracked: int = 10_000,
    ) -> None:
        self._partners: dict[str, BindPolicy] = dict(partners)
        self._failures_before_delay = failures_before_delay
        self._delay_max = delay_max
        self._base_delay = base_delay
        self._failure_ttl = failure_ttl
        self._max_tracked = max_tracked
        self._live: dict[str, int] = {}
        # Ordered by last failure, oldest first: expiry and eviction pop from the front.
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._accepted = 0
        self._refused: dict[int, int] = {}
        self._lock = threading.Lock()
        #: system_id -> HMAC of (hash, password) of the last password that verified.
        self._memo_key = os.urandom(32)
        self._verified: dict[str, bytes] = {}

    def reconfigure(
        self,
        partners: Mapping[str, BindPolicy],
        *,
        failures_before_delay: int | None = None,
        delay_max: float | None = None,
    ) -> None:
        """Apply a reloaded config. Live bind counts and failure counts are kept."""
        with self._lock:
            self._partners = dict(partners)
            self._verified = {k: v for k, v in self._verified.items() if k in self._partners}
            if failures_before_delay is not None:
                self._failures_before_delay = failures_before_delay
            if delay_max is not None:
                self._delay_max = delay_max

    # -- the verdict --------------------------------------------------------------------

    def check_bind(self, system_id: str, password: str, peer_ip: str, now: float) -> int:
        """The ``command_status`` to answer a bind with (0: accept); see the module notes.

        Records the outcome for :meth:`bind_delay` (a refusal for bad credentials or a
        refused address counts as a failure of ``peer_ip``; right credentials reset it).
        Does not count the bind as live: call :meth:`bind_opened` once it is answered.
        Thread-safe: the password check runs outside the lock.
        """
        with self._lock:
            partner = self._partners.get(system_id)
        status: CommandStatus
        max_binds = 0
        if partner is None or not partner.enabled:
            status = CommandStatus.ESME_RINVSYSID
        elif not _address_allowed(peer_ip, partner.allowed_networks):
            status = CommandStatus.ESME_RBINDFAIL
        elif not self._password_ok(system_id, password, partner.password_hash):
            status = CommandStatus.ESME_RINVPASWD
        else:
            status = CommandStatus.ESME_ROK
            max_binds = partner.max_binds
        with self._lock:
            if status == CommandStatus.ESME_ROK:
                self._forget(peer_ip)
                if self._live.get(system_id, 0) >= max_binds:
                    status = CommandStatus.ESME_RBINDFAIL
            else:
                self._note_failure(peer_ip, now)
            if status == CommandStatus.ESME_ROK:
                self._accepted += 1
            else:
                self._refused[status] = self._refused.get(status, 0) + 1
        return int(status)

    def _password_ok(self, system_id: str, password: str, password_hash: str) -> bool:
        """:func:`verify_password`, remembered for the right password (module notes)."""
        tag = hmac.new(
            self._memo_key,
            password_hash.encode() + b"\0" + password.encode("utf-8", "surrogatepass"),
            hashlib.sha256,
        ).digest()
        with self._lock:
            known = self._verified.get(system_id)
        if known is not None and hmac.compare_digest(known, tag):
            return True
        if not verify_password(password, password_hash):
            return False
        with self._lock:
            if system_id in self._partners:
                self._verified[system_id] = tag
        return True

    def bind_opened(self, system_id: str) -> bool:
        """Count a bind that was answered with 0.

        Returns False, without counting it, if the cap was reached meanwhile (two binds
        checked at once in worker threads can both pass :meth:`check_bind`): the server
        may then unbind the newcomer.
        """
        with self._lock:
            partner = self._partners.get(system_id)
            live = self._live.get(system_id, 0)
            if partner is not None and live >= partner.max_binds:
                return False
            self._live[system_id] = live + 1
            return True

    def bind_closed(self, system_id: str) -> None:
        """A bind counted by :meth:`bind_opened` ended."""
        with self._lock:
            live = self._live.get(system_id, 0) - 1
            if live > 0:
                self._live[system_id] = live
            else:
                self._live.pop(system_id, None)

    def live_binds(self, system_id: str) -> int:
        with self._lock:
            return self._live.get(system_id, 0)

    # -- brute-force delay --------------------------------------------------------------

    def bind_delay(self, peer_ip: str, now: float) -> float:
        """Seconds to wait before answering a bind from ``peer_ip``: 0 for most peers.

        0 until the address has ``failures_before_delay`` recent failures, then
        ``base_delay * 2**k`` for the k-th further failure, capped at ``delay_max``.
        """
        with self._lock:
            self._expire(now)
            entry = self._failures.get(_tracking_key(peer_ip))
            if entry is None or entry.count < self._failures_before_delay:
                return 0.0
            exponent = min(entry.count - self._failures_before_delay, 64)
            return float(min(self._delay_max, self._base_delay * 2.0**exponent))

    def record_failure(self, peer_ip: str, now: float) -> None:
        """Count a failed bind from ``peer_ip`` (:meth:`check_bind` does it itself)."""
        with self._lock:
            self._note_failure(peer_ip, now)

    def record_success(self, peer_ip: str) -> None:
        """Forget ``peer_ip``'s failures (:meth:`check_bind` does it itself)."""
        with self._lock:
            self._forget(peer_ip)

    def _note_failure(self, peer_ip: str, now: float) -> None:
        self._expire(now)
        key = _tracking_key(peer_ip)
        entry = self._failures.pop(key, None)
        if entry is None:
            entry = _Failures(0, now)
            while len(self._failures) >= self._max_tracked:
                self._failures.popitem(last=False)
        entry.count += 1
        entry.last = now
        self._failures[key] = entry

    def _forget(self, peer_ip: str) -> None:
        self._failures.pop(_tracking_key(peer_ip), None)

    def _expire(self, now: float) -> None:
        while self._failures:
            key, entry = next(iter(self._failures.items()))
            if now - entry.last < self._failure_ttl:
                break
            del self._failures[key]

    def statistics(self) -> AuthenticatorStatistics:
        with self._lock:
            return AuthenticatorStatistics(
                live_binds=dict(self._live),
                tracked_addresses=len(self._failures),
                accepted=self._accepted,
                refused=dict(self._refused),
            )


def _address_allowed(peer_ip: str, networks: Sequence[Network]) -> bool:
    if not networks:
        return True
    address = _address(peer_ip)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)
