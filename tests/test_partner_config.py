"""The ``server`` and ``partners`` config sections, their errors, and ``smppgw hash-password``."""

from __future__ import annotations

import io
import ipaddress
import subprocess
import sys
import textwrap

import pytest

from smppgw.app.config import (
    Billing,
    ConfigError,
    Endpoint,
    Moderation,
    OnViolation,
    PartnerSettings,
    ServerSettings,
    TrafficClass,
    default_config,
    load_config_text,
    partner_map,
)
from smppgw.cli import main
from smppgw.gateway.auth import hash_password, verify_password

HASH = hash_password("pw", salt=b"0123456789abcdef")

CARRIER = """\
carriers:
  - {name: vt, host: smsc.example, port: 2775, system_id: gw, password: pw}
"""


def _load(text: str) -> object:
    return load_config_text(CARRIER + textwrap.dedent(text).replace("HASH", HASH), "t.yaml", env={})


def _one(extra: str) -> str:
    """A partners section of one partner ``a`` with ``extra`` keys."""
    return f"partners: [{{system_id: a, password_hash: 'HASH', {extra}}}]"


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(text)
    return str(info.value).splitlines()


def test_defaults() -> None:
    # A deployment's server listens everywhere by default; the embedded demo only on
    # loopback, with one unmetered demo partner.
    assert ServerSettings().listen == Endpoint("0.0.0.0", 2775)
    config = default_config()
    assert config.server == ServerSettings(listen=Endpoint("127.0.0.1", 2775))
    assert config.server.enabled
    assert (config.server.window, config.server.max_sessions) == (64, 1000)
    assert config.server.max_pending_messages == 100_000
    assert (config.server.bind_failures_before_delay, config.server.bind_failure_delay_max) == (
        3,
        30,
    )
    assert [p.system_id for p in config.partners] == ["demo"]
    partner = PartnerSettings(system_id="acme", password_hash=HASH)
    assert (partner.enabled, partner.max_binds, partner.tps, partner.max_message_parts) == (
        True,
        4,
        0,
        10,
    )
    assert partner.moderation is Moderation.NONE
    assert partner.traffic_class is TrafficClass.MARKETING
    assert partner.billing is Billing.PREPAID
    assert partner.content.on_violation is OnViolation.REJECT
    assert partner.allowed_networks == ()


def test_full_partner_section() -> None:
    config = _load(
        """\
        server:
          listen: 127.0.0.1:2775
          window: 32
          tls: {listen: '[::]:3550', cert_file: /dev/null, key_file: /dev/null}
        partners:
          - system_id: bank
            password_hash: 'HASH'
            allowed_networks: [10.0.0.0/8, 192.0.2.1, '2001:db8::/32']
            max_binds: 2
            tps: 50
            sources: [BANK, '8055']
            short_codes: ['8055']
            traffic_class: transactional
            billing: postpaid
            content:
              templates: ['Ma OTP cua ban la {code}']
              block_keywords: [casino]
              block_patterns: ['https?://']
              on_violation: hold
            moderation: unmatched
            default_registered_delivery: 1
            max_message_parts: 5
          - system_id: branch
            password_hash: 'HASH'
            parent: bank
        """
    )
    assert config.server.tls is not None  # type: ignore[attr-defined]
    partners = partner_map(config.partners)  # type: ignore[attr-defined]
    bank = partners["bank"]
    assert bank.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert bank.traffic_class is TrafficClass.TRANSACTIONAL
    assert bank.content.on_violation is OnViolation.HOLD
    assert partners["branch"].parent == "bank"
    assert verify_password("pw", bank.password_hash)


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            _one("allowed_networks: [10.0.0.0/8, 10.1.1.1/8]"),
            "t.yaml:3: partners[0].allowed_networks[1]: not an IP network in CIDR form",
        ),
        (
            _one("allowed_networks: ['2001:db8::/129']"),
            "t.yaml:3: partners[0].allowed_networks[0]: not an IP network",
        ),
        (
            "partners: [{system_id: a, password_hash: hunter2}]",
            "t.yaml:3: partners[0].password_hash: not a password hash",
        ),
        (
            "partners: [{system_id: a, password_hash: 'scrypt$16384$8$1$c2FsdA==$c2FsdA=='}]",
            "t.yaml:3: partners[0].password_hash: the salt",
        ),
        (
            "partners: [{system_id: a-very-long-system-id, password_hash: 'HASH'}]",
            "t.yaml:3: partners[0].system_id: use 1-15 printable ASCII",
        ),
        (
            _one("content: {templates: ['x {a']}"),
            "t.yaml:3: partners[0].content.templates[0]: stray '{'",
        ),
        (
            _one("content: {block_patterns: ['(']}"),
            "t.yaml:3: partners[0].content.block_patterns[0]: not a valid regex",
        ),
        (
            _one("content: {block_keywords: [" + "k" * 501 + "]}"),
            "t.yaml:3: partners[0].content.block_keywords[0]: the keyword is 501 characters",
        ),
        (
            _one("credit_limit: 5"),
            "t.yaml:3: partners[0]: credit_limit is not read: a postpaid partner's credit limit",
        ),
        (
            _one("short_codes: [8055]"),
            "t.yaml:3: partners[0].short_codes: quote short code 8055",
        ),
        (
            _one("sources: [ACME, acme]"),
            "t.yaml:3: partners[0].sources: source 'acme' is listed twice",
        ),
        (
            _one("moderation: some"),
            "t.yaml:3: partners[0].moderation:",
        ),
        (
            _one("default_registered_delivery: 3"),
            "t.yaml:3: partners[0].default_registered_delivery: receipt bits 3",
        ),
        ("server: {window: 0}", "t.yaml:3: server.window:"),
        (
            "server: {listen: 127.0.0.1:9464}",
            "t.yaml:3: server.listen: the same address as metrics.listen",
        ),
    ],
)
def test_validation_errors_with_key_paths(yaml: str, expected: str) -> None:
    problems = _errors(yaml)
    assert any(p.startswith(expected) for p in problems), problems
    assert all(HASH not in p for p in problems)


def test_cross_partner_errors() -> None:
    problems = _errors(
        """\
        partners:
          - {system_id: a, password_hash: 'HASH', parent: b, short_codes: ['8055']}
          - {system_id: b, password_hash: 'HASH', parent: c}
          - {system_id: c, password_hash: 'HASH', parent: a}
          - {system_id: d, password_hash: 'HASH', parent: nobody}
          - {system_id: a, password_hash: 'HASH'}
          - {system_id: e, password_hash: 'HASH', short_codes: ['8055']}
          - {system_id: f, password_hash: 'HASH', parent: c}
        """
    )
    assert "t.yaml:4: partners[0].parent: parents form a cycle: a -> b -> c -> a" in problems
    assert "t.yaml:5: partners[1].parent: parents form a cycle: b -> c -> a -> b" in problems
    assert "t.yaml:6: partners[2].parent: parents form a cycle: c -> a -> b -> c" in problems
    assert "t.yaml:7: partners[3].parent: no partner with system_id 'nobody'" in problems
    assert "t.yaml:8: partners[4].system_id: duplicate system_id 'a'" in problems
    assert "t.yaml:9: partners[5].short_codes[0]: short code 8055 is owned by 'a'" in problems
    # f hangs below the cycle but is not in it.
    assert not any("partners[6]" in p for p in problems)
    assert len(problems) == 6


def test_self_parent() -> None:
    problems = _errors("partners: [{system_id: a, password_hash: 'HASH', parent: a}]")
    assert problems == ["t.yaml:3: partners[0]: a partner cannot be its own parent"]


def test_server_clash_ignored_when_disabled() -> None:
    _load("server: {enabled: false, listen: 127.0.0.1:9464}")


@pytest.mark.parametrize(
    "module", ["smppgw.app.partner_models", "smppgw.app.config_models", "smppgw.app.config"]
)
def test_either_module_may_be_imported_first(module: str) -> None:
    code = (
        f"import {module}\n"
        "from smppgw.app.config import default_config\n"
        "assert default_config().server.listen.port == 2775\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- smppgw hash-password ---------------------------------------------------------------


def test_hash_password_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["hash-password"]) == 0
    out = capsys.readouterr().out.strip()
    assert verify_password("s3cret", out)
    assert "s3cret" not in out
    PartnerSettings(system_id="a", password_hash=out)


@pytest.mark.parametrize(("given", "error"), [("\n", "empty"), ("123456789\n", "longer than 8")])
def test_hash_password_refuses(
    given: str, error: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(given))
    assert main(["hash-password"]) == 2
    assert error in capsys.readouterr().err


def test_hash_password_takes_no_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["hash-password", "s3cret"])
