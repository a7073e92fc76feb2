"""Partner authentication: password hashes, the bind verdict, bind caps, brute-force delays."""

from __future__ import annotations

import ipaddress

import pytest

from smppgw.app.config import PartnerSettings, partner_map
from smppgw.gateway.auth import (
    Authenticator,
    check_password_hash,
    hash_password,
    verify_password,
)
from smppgw.protocol.status import CommandStatus as S

PASSWORD = "s3cret"
HASH = hash_password(PASSWORD, salt=b"0123456789abcdef")


def _partner(system_id: str = "acme", **kw: object) -> PartnerSettings:
    return PartnerSettings.model_validate({"system_id": system_id, "password_hash": HASH, **kw})


def _auth(*partners: PartnerSettings, **kw: float) -> Authenticator:
    return Authenticator(partner_map(partners or (_partner(),)), **kw)


# -- hashes -----------------------------------------------------------------------------


def test_hash_round_trip_and_wrong_password() -> None:
    encoded = hash_password("pw")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("pw", encoded)
    assert not verify_password("pW", encoded)
    assert not verify_password("", encoded)
    assert not verify_password("pw ", encoded)


def test_salt_makes_hashes_differ_and_is_reproducible() -> None:
    assert hash_password("pw") != hash_password("pw")
    salt = b"\x00" * 16
    assert hash_password("pw", salt=salt) == hash_password("pw", salt=salt)


def test_non_ascii_password() -> None:
    encoded = hash_password("mậtkhẩu")
    assert verify_password("mậtkhẩu", encoded)
    assert not verify_password("matkhau", encoded)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plaintext",
        "bcrypt$...",
        "scrypt$16384$8$1$c2FsdA==",  # no hash
        "scrypt$1000$8$1$MDEyMzQ1Njc4OWFiY2RlZg==$" + "A" * 44,  # N not a power of 2
        "scrypt$1048576$8$1$MDEyMzQ1Njc4OWFiY2RlZg==$" + "A" * 44,  # 1 GiB of memory
        "scrypt$16384$8$1$!!!!$" + "A" * 44,  # not base64
        "scrypt$16384$8$1$c2FsdA==$" + "A" * 44,  # salt too short
    ],
)
def test_malformed_hashes_are_refused_and_match_nothing(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        check_password_hash(bad)
    assert not verify_password("anything", bad)


# -- the verdict ------------------------------------------------------------------------


def test_good_bind() -> None:
    auth = _auth()
    assert auth.check_bind("acme", PASSWORD, "10.1.2.3", 0.0) == S.ESME_ROK


def test_unknown_or_disabled_system_id() -> None:
    auth = _auth(_partner(), _partner("off", enabled=False))
    assert auth.check_bind("nobody", PASSWORD, "10.1.2.3", 0.0) == S.ESME_RINVSYSID
    assert auth.check_bind("off", PASSWORD, "10.1.2.3", 0.0) == S.ESME_RINVSYSID
    # system_ids are exact: SMPP does not fold case.
    assert auth.check_bind("ACME", PASSWORD, "10.1.2.3", 0.0) == S.ESME_RINVSYSID


def test_wrong_password() -> None:
    auth = _auth()
    assert auth.check_bind("acme", "s3cre", "10.1.2.3", 0.0) == S.ESME_RINVPASWD
    assert auth.statistics().refused == {S.ESME_RINVPASWD: 1}


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.255.0.1", True),
        ("11.0.0.1", False),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("2001:db8:1::5", True),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", True),  # an IPv4 peer on a dual-stack socket
        ("fe80::1%eth0", False),
        ("not-an-address", False),
    ],
)
def test_allowlist_ipv4_and_ipv6(peer: str, allowed: bool) -> None:
    partner = _partner(allowed_networks=["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"])
    assert partner.allowed_networks[2] == ipaddress.ip_network("2001:db8::/32")
    status = _auth(partner).check_bind("acme", PASSWORD, peer, 0.0)
    assert status == (S.ESME_ROK if allowed else S.ESME_RBINDFAIL)


def test_address_is_checked_before_the_password() -> None:
    auth = _auth(_partner(allowed_networks=["10.0.0.0/8"]))
    # A wrong password from a refused address learns nothing about the password.
    assert auth.check_bind("acme", "wrong", "11.0.0.1", 0.0) == S.ESME_RBINDFAIL


def test_empty_allowlist_allows_any_address() -> None:
    auth = _auth()
    assert auth.check_bind("acme", PASSWORD, "2001:db8::1", 0.0) == S.ESME_ROK


def test_bind_cap() -> None:
    auth = _auth(_partner(max_binds=2))
    for _ in range(2):
        assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
        assert auth.bind_opened("acme")
    assert auth.live_binds("acme") == 2
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_RBINDFAIL
    # A cap refusal is no brute-force failure: the credentials were right.
    assert auth.bind_delay("10.0.0.1", 0.0) == 0
    auth.bind_closed("acme")
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK


def test_bind_opened_refuses_past_the_cap() -> None:
    # Two binds checked at once in worker threads can both pass check_bind.
    auth = _auth(_partner(max_binds=1))
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
    assert auth.check_bind("acme", PASSWORD, "10.0.0.2", 0.0) == S.ESME_ROK
    assert auth.bind_opened("acme")
    assert not auth.bind_opened("acme")
    assert auth.live_binds("acme") == 1


def test_bind_closed_never_goes_negative() -> None:
    auth = _auth()
    auth.bind_closed("acme")
    assert auth.live_binds("acme") == 0
    assert auth.statistics().live_binds == {}


def test_reconfigure_keeps_live_binds() -> None:
    auth = _auth(_partner(max_binds=2))
    assert auth.bind_opened("acme")
    assert auth.bind_opened("acme")
    auth.reconfigure(partner_map([_partner(max_binds=3), _partner("beta")]))
    assert auth.live_binds("acme") == 2
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
    assert auth.check_bind("beta", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
    auth.reconfigure({})
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_RINVSYSID
    assert auth.live_binds("acme") == 2


# -- brute-force delay ------------------------------------------------------------------


def test_delay_grows_exponentially_to_the_cap_and_resets_on_success() -> None:
    auth = _auth(failures_before_delay=3, delay_max=30.0)
    peer = "203.0.113.9"
    delays = []
    for i in range(12):
        delays.append(auth.bind_delay(peer, float(i)))
        assert auth.check_bind("nobody", "x", peer, float(i)) == S.ESME_RINVSYSID
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    # Other addresses are not slowed down.
    assert auth.bind_delay("203.0.113.10", 12.0) == 0
    assert auth.check_bind("acme", PASSWORD, peer, 12.0) == S.ESME_ROK
    assert auth.bind_delay(peer, 12.0) == 0


def test_wrong_passwords_and_refused_addresses_count_as_failures() -> None:
    auth = _auth(_partner(allowed_networks=["10.0.0.0/8"]), failures_before_delay=2)
    assert auth.check_bind("acme", "bad", "10.0.0.1", 0.0) == S.ESME_RINVPASWD
    assert auth.check_bind("acme", "bad", "10.0.0.1", 0.0) == S.ESME_RINVPASWD
    assert auth.bind_delay("10.0.0.1", 0.0) == 1
    auth.check_bind("acme", PASSWORD, "11.0.0.1", 0.0)
    auth.check_bind("acme", PASSWORD, "11.0.0.1", 0.0)
    auth.check_bind("acme", PASSWORD, "11.0.0.1", 0.0)
    assert auth.bind_delay("11.0.0.1", 0.0) == 2


def test_failures_expire() -> None:
    auth = _auth(failures_before_delay=1, failure_ttl=60.0)
    auth.record_failure("198.51.100.1", 0.0)
    auth.record_failure("198.51.100.1", 10.0)
    assert auth.bind_delay("198.51.100.1", 69.0) == 2
    assert auth.bind_delay("198.51.100.1", 70.0) == 0
    assert auth.statistics().tracked_addresses == 0


def test_tracked_addresses_are_bounded() -> None:
    auth = _auth(failures_before_delay=1, max_tracked=100)
    for i in range(1000):
        auth.record_failure(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert auth.statistics().tracked_addresses == 100
    # The oldest were dropped, the newest kept.
    assert auth.bind_delay("10.0.0.0", 0.0) == 0
    assert auth.bind_delay("10.0.3.231", 0.0) == 1


def test_ipv6_peers_are_tracked_by_their_slash_64() -> None:
    auth = _auth(failures_before_delay=2)
    auth.record_failure("2001:db8:1:2::1", 0.0)
    auth.record_failure("2001:db8:1:2::ffff", 0.0)
    assert auth.bind_delay("2001:db8:1:2:abcd::9", 0.0) == 1
    assert auth.bind_delay("2001:db8:1:3::1", 0.0) == 0


def test_record_success_resets() -> None:
    auth = _auth(failures_before_delay=0)
    auth.record_failure("192.0.2.1", 0.0)
    assert auth.bind_delay("192.0.2.1", 0.0) == 2
    auth.record_success("192.0.2.1")
    assert auth.bind_delay("192.0.2.1", 0.0) == 0


def test_plaintext_password_is_not_kept() -> None:
    auth = _auth()
    auth.check_bind("acme", "wrong-pw", "10.0.0.1", 0.0)
    assert "wrong-pw" not in repr(vars(auth))
    assert "wrong-pw" not in repr(auth.statistics())


# -- the memo of verified passwords -----------------------------------------------------


def _counting_scrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import smppgw.gateway.auth as auth_module

    calls: list[str] = []
    real = auth_module.verify_password

    def counted(password: str, encoded: str) -> bool:
        calls.append(password)
        return real(password, encoded)

    monkeypatch.setattr(auth_module, "verify_password", counted)
    return calls


def test_a_verified_password_binds_again_without_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_scrypt(monkeypatch)
    auth = _auth(_partner(max_binds=10))
    for _ in range(4):
        assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
    assert calls == [PASSWORD]  # scrypt once; the three reconnects cost an HMAC
    # Wrong guesses never match the memo: each one still pays scrypt.
    for guess in ("s3cret ", "S3cret", ""):
        assert auth.check_bind("acme", guess, "10.0.0.2", 0.0) == S.ESME_RINVPASWD
    assert calls == [PASSWORD, "s3cret ", "S3cret", ""]
    # And the memo never lets another partner in with acme's password.
    other = hash_password("other", salt=b"fedcba9876543210")
    auth.reconfigure(partner_map([_partner(max_binds=10), _partner("beta", password_hash=other)]))
    assert auth.check_bind("beta", PASSWORD, "10.0.0.3", 0.0) == S.ESME_RINVPASWD


def test_a_new_password_hash_forgets_the_old_password(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_scrypt(monkeypatch)
    auth = _auth(_partner(max_binds=10))
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_ROK
    new_hash = hash_password("n3w", salt=b"0123456789abcdef")
    auth.reconfigure(partner_map([_partner(max_binds=10, password_hash=new_hash)]))
    assert auth.check_bind("acme", PASSWORD, "10.0.0.1", 0.0) == S.ESME_RINVPASWD
    assert auth.check_bind("acme", "n3w", "10.0.0.1", 0.0) == S.ESME_ROK
    assert calls == [PASSWORD, PASSWORD, "n3w"]
    # A partner removed by a reload is forgotten, memo included.
    auth.reconfigure(partner_map([_partner("beta")]))
    assert "acme" not in auth._verified
    assert "n3w" not in repr(vars(auth))
