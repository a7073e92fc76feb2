"""Log lines: exact JSON keys, masked numbers, secrets never written, stdlib routed too."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from smppgw.app.config import LoggingSettings
from smppgw.app.logs import configure_logging, mask_number_text

Capture = Callable[..., io.StringIO]
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def capture() -> Iterator[Capture]:
    """configure_logging into a buffer; undo every global change afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(**settings: Any) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(LoggingSettings(**settings), stream=buffer)
        return buffer

    try:
        yield configure
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_object_per_line_with_exact_keys(capture: Capture) -> None:
    out = capture(mask_numbers=False)
    log = structlog.get_logger("smppgw.net.carrier")
    structlog.contextvars.bind_contextvars(carrier="viettel", bind=1)
    log.info("bound", message_id="0A1B")
    log.debug("not at info")
    (line,) = _lines(out)
    assert list(line) == ["timestamp", "level", "logger", "event", "bind", "carrier", "message_id"]
    assert ISO_UTC.fullmatch(line["timestamp"])
    assert {k: v for k, v in line.items() if k != "timestamp"} == {
        "level": "info",
        "logger": "smppgw.net.carrier",
        "event": "bound",
        "message_id": "0A1B",
        "carrier": "viettel",
        "bind": 1,
    }


def test_level_setting_filters(capture: Capture) -> None:
    out = capture(level="warning")
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    logging.getLogger("lib").info("quiet too")
    assert [line["event"] for line in _lines(out)] == ["loud"]


def test_numbers_masked_in_keys_and_event_text(capture: Capture) -> None:
    out = capture(mask_numbers=True)
    structlog.get_logger("t").info(
        "MO from 84912345678 to 8055",
        source_addr="84912345678",
        destination_addr="+84987654321",
        msisdn=84911112222,
        destinations=["84900000001", "8055"],
        message_id="123456789012",
        system_id="ACME",
    )
    (line,) = _lines(out)
    assert line["event"] == "MO from 849*****678 to 8055"
    assert line["source_addr"] == "849*****678"
    assert line["destination_addr"] == "+849*****321"
    assert line["msisdn"] == "849*****222"
    assert line["destinations"] == ["849*****001", "8055"]
    assert line["message_id"] == "123456789012"  # ids are not numbers of people
    assert line["system_id"] == "ACME"


def test_numbers_kept_when_masking_is_off(capture: Capture) -> None:
    out = capture(mask_numbers=False)
    structlog.get_logger("t").info("to 84912345678", destination_addr="84912345678")
    (line,) = _lines(out)
    assert (line["event"], line["destination_addr"]) == ("to 84912345678", "84912345678")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("84912345678", "849*****678"),
        ("12345678", "123**678"),
        ("1234567", "1234567"),
        ("id 8055 at 0912345678.", "id 8055 at 091****678."),
        ("a84912345678b", "a849*****678b"),
    ],
)
def test_mask_number_text(text: str, masked: str) -> None:
    assert mask_number_text(text) == masked


def test_secrets_never_reach_the_output(capture: Capture) -> None:
    out = capture()
    structlog.contextvars.bind_contextvars(session_token="tok-1")
    structlog.get_logger("t").info(
        "bind",
        password="hunter2",
        carrier_secret="s3",
        config={"carriers": [{"name": "vt", "password": "hunter3", "api_key": "k"}]},
        resolved=SecretStr("hunter4"),
        passes=3,
    )
    text = out.getvalue()
    for secret in ("hunter2", "s3", "hunter3", "tok-1", "hunter4", '"k"'):
        assert secret not in text
    (line,) = _lines(out)
    assert line["password"] == line["carrier_secret"] == line["session_token"] == "[redacted]"
    assert line["config"] == {
        "carriers": [{"name": "vt", "password": "[redacted]", "api_key": "[redacted]"}]
    }
    assert line["resolved"] == "[redacted]"
    assert line["passes"] == 3  # "passes" is not "pass"


def test_stdlib_logging_goes_through_the_same_processors(capture: Capture) -> None:
    out = capture()
    structlog.contextvars.bind_contextvars(carrier="mobifone")
    logging.getLogger("some.lib").warning(
        "retry %s for %s", 2, "84912345678", extra={"token": "t0k"}
    )
    (line,) = _lines(out)
    assert {k: v for k, v in line.items() if k != "timestamp"} == {
        "level": "warning",
        "logger": "some.lib",
        "event": "retry 2 for 849*****678",
        "carrier": "mobifone",
        "token": "[redacted]",
    }


def test_exceptions_are_one_line_with_traceback(capture: Capture) -> None:
    out = capture()
    try:
        raise ValueError("bad pdu")
    except ValueError:
        structlog.get_logger("t").exception("session failed")
    (line,) = _lines(out)
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: bad pdu")


def test_console_format_is_readable_and_masked(capture: Capture) -> None:
    out = capture(format="console", level="debug")
    structlog.get_logger("t").debug("hello", msisdn="84912345678", password="pw")
    text = out.getvalue()
    assert "hello" in text
    assert "msisdn=849*****678" in text
    assert "password=[redacted]" in text


def test_reconfiguring_replaces_the_handler(capture: Capture) -> None:
    first = capture()
    second = capture()
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["once"]
