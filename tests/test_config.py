"""Config models, the YAML loader's line-numbered errors, and ``smppgw check-config``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from smppgw.app.config import (
    BindMode,
    CarrierSettings,
    Config,
    ConfigError,
    Durability,
    Endpoint,
    IdFormat,
    SplitMode,
    default_config,
    load_config,
    load_config_text,
)
from smppgw.cli import main

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
carriers:
  - name: vt
    host: smsc.example
    port: 2775
    system_id: acme
    password: pw
"""


def _errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), "t.yaml", env=env or {})
    return str(info.value).splitlines()


def test_minimal_config_takes_defaults() -> None:
    config = load_config_text(MINIMAL, "t.yaml")
    carrier = config.carrier("vt")
    assert carrier.secret.get_secret_value() == "pw"
    assert carrier.bind_mode is BindMode.TRANSCEIVER
    assert carrier.message_id_format is IdFormat.STRING
    assert carrier.split is SplitMode.UDH8
    assert (carrier.window, carrier.binds, carrier.tps) == (10, 1, 0)
    assert carrier.tls_hostname == "smsc.example"
    assert config.metrics.listen == Endpoint("127.0.0.1", 9464)
    assert config.routes == ()
    assert config.default_route == ()


def test_a_udh16_carrier_makes_every_long_message_cut_to_its_room() -> None:
    """One cut fits all: admission cuts parts one octet shorter while any carrier wants
    the 16-bit reference (the parts quota counts are the parts every carrier gets)."""
    assert load_config_text(MINIMAL, "t.yaml").cut_room() is SplitMode.UDH8
    second = "  - {name: mf, host: h, port: 1, system_id: a, password: p, split: udh16}\n"
    config = load_config_text(MINIMAL + second, "t.yaml")
    assert config.carrier("mf").split is SplitMode.UDH16
    assert config.cut_room() is SplitMode.UDH16
    sar = load_config_text(MINIMAL + second.replace("udh16", "sar"), "t.yaml")
    assert sar.cut_room() is SplitMode.UDH8


def test_embedded_default_file_equals_default_config() -> None:
    assert load_config(ROOT / "config/smppgw.yaml") == default_config()
    config = default_config()
    assert config.simulator.enabled
    assert config.default_route == ("sim",)
    assert config.store.path == Path("var/smppgw.sqlite")
    assert config.store.durability is Durability.PROCESS
    sim = config.carrier("sim")
    assert (sim.host, sim.port) == (config.simulator.listen.host, config.simulator.listen.port)
    account = config.simulator.accounts[0]
    assert (account.system_id, account.password) == (sim.system_id, sim.secret)


def test_example_file_loads_with_its_secrets_and_files(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/mobifone").write_text("mb-pass\n")
    (tmp_path / "viettel-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    text = (ROOT / "config/smppgw.example.yaml").read_text().replace("/etc/smppgw", str(tmp_path))
    env = {
        "SMPPGW_VIETTEL_PASSWORD": "vt-pass",
        "SMPPGW_VINAPHONE_PASSWORD": "vn-pass",
        "SMPPGW_SMTP_PASSWORD": "smtp-pass",
    }
    config = load_config_text(text, "example.yaml", env=env)
    assert [c.name for c in config.carriers] == ["viettel", "mobifone", "vinaphone"]
    secrets = {c.name: c.secret.get_secret_value() for c in config.carriers}
    assert secrets == {"viettel": "vt-pass", "mobifone": "mb-pass", "vinaphone": "vn-pass"}
    viettel = config.carrier("viettel")
    assert viettel.tls is not None
    assert viettel.tls.verify
    assert viettel.message_id_format is IdFormat.HEX_RESP_DEC_RECEIPT
    assert config.route_table()["8496"] == ("viettel", "vinaphone")
    assert config.default_route == ("vinaphone",)
    assert not config.simulator.enabled
    assert [p.system_id for p in config.partners] == ["acme", "shop"]
    assert config.alerts.active
    assert config.scenarios.utc_offset == "+07:00"
    assert config.retention.messages_days == 90


def test_secrets_never_in_repr_str_or_dump() -> None:
    config = load_config_text(MINIMAL.replace("password: pw", "password: hunter2"), "t.yaml")
    for text in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        assert "hunter2" not in text


def test_every_problem_with_its_line() -> None:
    lines = _errors(
        """\
        store:
          durability: fast
        carriers:
          - name: vt
            host: smsc.example
            port: 70000
            system_id: acme
            password_env: VT_PASS
            windw: 50
          - name: mb
            host: h
            port: 2775
            system_id: acme
        routes:
          - prefix: 8496
            carriers: [vt]
        """
    )
    assert lines == [
        "t.yaml:2: store.durability: Input should be 'process' or 'power' (got 'fast')",
        "t.yaml:6: carriers[0].port: Input should be less than or equal to 65535 (got 70000)",
        "t.yaml:8: carriers[0].password_env: environment variable VT_PASS is not set",
        "t.yaml:9: carriers[0].windw: unknown key (did you mean 'window'?)",
        "t.yaml:10: carriers[1]: set exactly one of password, password_env, password_file "
        "(got none)",
        't.yaml:15: routes[0].prefix: quote the prefix, e.g. "8496" '
        "(YAML reads bare 0123 as octal)",
    ]


def test_cross_field_problems_point_at_each_key() -> None:
    lines = _errors(
        """\
        carriers:
          - {name: vt, host: h, port: 1, system_id: x, password: p}
          - {name: vt, host: h, port: 2, system_id: x, password: p}
          - {name: rx, host: h, port: 3, system_id: x, password: p, bind_mode: receiver}
        routes:
          - {prefix: "84", carriers: [vt, ghost]}
          - {prefix: "84", carriers: [rx]}
        default_route: [vt, vt]
        """
    )
    assert lines == [
        "t.yaml:3: carriers[1].name: duplicate carrier 'vt'",
        "t.yaml:6: routes[0].carriers[1]: no carrier named 'ghost' (carriers: rx, vt)",
        "t.yaml:7: routes[1].carriers[0]: carrier 'rx' binds as receiver and cannot send MT",
        "t.yaml:7: routes[1].prefix: duplicate prefix '84'",
        "t.yaml:8: default_route: a carrier is listed twice",
    ]


def test_missing_key_is_reported_at_its_section() -> None:
    assert _errors(
        """\
        carriers:
          - name: vt
            port: 1
            system_id: x
            password: p
        """
    ) == ["t.yaml:2: carriers[0].host: required key is missing"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "t.yaml:1: carriers: required key is missing"),
        ("- 1\n", "t.yaml:1: the top level must be a mapping"),
        ("carriers: [\n", "t.yaml:2: yaml: while parsing a flow node expected the node content"),
        ("a: 1\n---\nb: 2\n", "t.yaml:2: yaml: expected a single document in the stream"),
        ("x: !!python/object:os.system 1\n", "t.yaml:1: yaml: could not determine a constructor"),
    ],
)
def test_yaml_level_problems(text: str, expected: str) -> None:
    assert _errors(text)[0].startswith(expected)


def test_duplicate_keys_are_errors() -> None:
    lines = _errors(MINIMAL + "default_route: [vt]\ndefault_route: []\n")
    assert lines == ["t.yaml:8: default_route: duplicate key (first at line 7)"]


def test_vendor_tlvs_take_tag_numbers_and_admission_gets_their_union() -> None:
    text = MINIMAL + "    vendor_tlvs: [0x1401, '0x1402', 5123]\n"
    config = load_config_text(text, "t.yaml")
    assert config.carriers[0].vendor_tlvs == (0x1401, 0x1402, 0x1403)
    assert config.vendor_tlv_tags() == frozenset({0x1401, 0x1402, 0x1403})


def test_drop_tlvs_take_names_and_tags() -> None:
    text = MINIMAL + "    drop_tlvs: [ms_validity, ' Callback_Num ', 0x020B]\n"
    config = load_config_text(text, "t.yaml")
    assert config.carriers[0].drop_tlvs == (0x1204, 0x0381, 0x020B)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("window: 0", "carriers[0].window: Input should be greater than or equal to 1 (got 0)"),
        ("window: 1025", "carriers[0].window: Input should be less than or equal to 1024"),
        ("tps: -1", "carriers[0].tps: Input should be greater than or equal to 0"),
        ("enquire_link_interval: 0", "carriers[0].enquire_link_interval: Input should be greater"),
        ("binds: 0", "carriers[0].binds: Input should be greater than or equal to 1"),
        ("source_npi: 2", "carriers[0].source_npi: not an SMPP 3.4 NPI"),
        ("dest_ton: 7", "carriers[0].dest_ton: Input should be less than or equal to 6"),
        ("name: 'a b'", "carriers[0].name: use 1-32 letters"),
        ("system_id: abcdefghijklmnop", "carriers[0].system_id: String should have at most 15"),
        ("message_id_format: base64", "carriers[0].message_id_format: Input should be 'string'"),
        ("split: udh32", "carriers[0].split: Input should be 'udh8', 'udh16', 'sar' or 'payload'"),
        ("split: payload", "carriers[0].split: payload is not offered: long messages are cut"),
        ("validity_format: local", "carriers[0].validity_format: Input should be 'absolute'"),
        ("service_type: CMTABC", "carriers[0].service_type: String should have at most 5"),
        ("drop_tlvs: [ms_validity, nope]", "carriers[0].drop_tlvs: 'nope' is not an SMPP 3.4"),
        ("drop_tlvs: [0]", "carriers[0].drop_tlvs: 0 is not a TLV tag"),
        ("vendor_tlvs: [0x0204]", "carriers[0].vendor_tlvs: 516 is not a vendor TLV tag"),
        ("vendor_tlvs: [abc]", "carriers[0].vendor_tlvs: 'abc' is not a tag number"),
        ("service_type: 'C\u00e9'", "carriers[0].service_type: use printable ASCII"),
        ("address_range: '" + "8" * 41 + "'", "carriers[0].address_range: String should have"),
        ("reconnect: {initial: 10, max: 5}", "carriers[0].reconnect: max (5.0) is below initial"),
        ("tls: {ca_file: /nonexistent.pem}", "carriers[0].tls.ca_file: cannot read CA file"),
        ("data_coding: {default_alphabet: ascii}", "carriers[0].data_coding.default_alphabet:"),
    ],
)
def test_carrier_ranges(line: str, expected: str) -> None:
    key = line.split(":", 1)[0]
    text, replaced = re.subn(rf"(?m)^(\s*-?\s*){key}: .*$", lambda m: m[1] + line, MINIMAL)
    lines = _errors(text if replaced else MINIMAL + f"    {line}\n")
    assert len(lines) == 1
    assert lines[0].startswith("t.yaml:"), lines
    assert lines[0].split(": ", 1)[1].startswith(expected), lines


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("metrics: {listen: localhost}", "metrics.listen: 'localhost' is not 'host:port'"),
        ("metrics: {listen: '::1:80'}", "metrics.listen: write an IPv6 address in brackets"),
        ("metrics: {listen: 'h:0'}", "metrics.listen: port '0' is not a number in 1..65535"),
        ("logging: {format: xml}", "logging.format: Input should be 'json' or 'console'"),
        ("store: {linger_ms: -1}", "store.linger_ms: Input should be greater than or equal to 0"),
        ("simulator: {receipt: {outcomes: {DELIVRD: 0}}}", "simulator.receipt.outcomes: at least"),
        ("simulator: {accounts: []}", "simulator.accounts: needs at least 1 item(s)"),
        ("routes: [{prefix: '+84', carriers: [vt]}]", "routes[0].prefix: must be 1-15 digits"),
        ("routes: [{prefix: '84', carriers: []}]", "routes[0].carriers: needs at least 1 item(s)"),
        ("carriers: []", "carriers: at least one carrier is needed"),
    ],
)
def test_section_problems(section: str, expected: str) -> None:
    text = MINIMAL if section.startswith("carriers") is False else ""
    lines = _errors(text + section + "\n")
    assert len(lines) == 1, lines
    assert lines[0].split(": ", 1)[1].startswith(expected), lines


def test_ipv6_endpoint_and_level_case() -> None:
    config = load_config_text(
        MINIMAL + "metrics: {listen: '[::1]:9100'}\nlogging: {level: DEBUG}\n", "t.yaml"
    )
    assert config.metrics.listen == Endpoint("::1", 9100)
    assert str(config.metrics.listen) == "[::1]:9100"
    assert config.logging.level == "debug"


def test_password_sources(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-f\n")
    by_file = MINIMAL.replace("password: pw", f"password_file: {secret_file}")
    assert load_config_text(by_file, "t").carriers[0].secret.get_secret_value() == "from-f"
    by_env = MINIMAL.replace("password: pw", "password_env: PW")
    config = load_config_text(by_env, "t", env={"PW": "from-e"})
    assert config.carriers[0].secret == SecretStr("from-e")

    both = MINIMAL + "    password_env: PW\n"
    assert _errors(both, {"PW": "x"}) == [
        "t.yaml:2: carriers[0]: set exactly one of password, password_env, password_file "
        "(got password, password_env)"
    ]
    missing = MINIMAL.replace("password: pw", f"password_file: {tmp_path / 'nope'}")
    assert _errors(missing)[0].startswith(
        "t.yaml:6: carriers[0].password_file: cannot read password file"
    )
    too_long = MINIMAL.replace("password: pw", "password_env: PW")
    assert _errors(too_long, {"PW": "123456789"}) == [
        "t.yaml:6: carriers[0].password_env: the password is longer than 8 characters (SMPP 3.4)"
    ]


def test_secret_inputs_are_never_echoed() -> None:
    lines = _errors(MINIMAL.replace("password: pw", "password: 12345678901"))
    assert lines == ["t.yaml:6: carriers[0].password: Input should be a valid string"]
    # Nor by pydantic itself, when a model built in code is printed or logged.
    with pytest.raises(ValidationError) as info:
        CarrierSettings(name="a", host="h", port=1, system_id="s", password="hunter2hunter2")
    assert "hunter2" not in str(info.value)


def test_models_are_frozen_and_validate_when_built_in_code() -> None:
    config = default_config()
    with pytest.raises(ValidationError):
        config.carriers[0].window = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="no carrier named 'x'"):
        Config(carriers=config.carriers, default_route=("x",))
    with pytest.raises(ValidationError, match="Extra inputs"):
        CarrierSettings.model_validate(
            {"name": "a", "host": "h", "port": 1, "system_id": "s", "password": "p", "pwd": 1}
        )


def test_store_settings_map_to_the_store() -> None:
    config = load_config_text(MINIMAL + "store: {batch_max: 64, linger_ms: 2.5}\n", "t")
    store = config.store.to_store_config()
    assert (store.max_batch_items, store.linger) == (64, 0.0025)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert str(info.value) == f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "config/smppgw.yaml")
    assert main(["check-config", "--config", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"ok: {path}"
    assert out[1].startswith("1 carrier(s) [sim]; 0 route(s), default -> sim;")


def test_check_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL + "    window: 0\nrouts: []\n")
    assert main(["check-config", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:7: carriers[0].window: Input should be greater than or equal to 1 (got 0)",
        f"{path}:8: routs: unknown key (did you mean 'routes'?)",
    ]
