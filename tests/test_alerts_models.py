"""The ``alerts:`` config section on its own: defaults, limits, secrets, templates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from smppgw.alerts.plan import DEFAULT_TEMPLATES
from smppgw.alerts.rules import AlertKind
from smppgw.app.alert_models import AlertSettings, alert_problems

ENV = {"SMTP_PW": "s3cret-pw"}


def _load(data: dict[str, Any]) -> AlertSettings:
    return AlertSettings.model_validate(data, context={"env": ENV})


def _errors(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        _load(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


FULL: dict[str, Any] = {
    "enabled": True,
    "check_interval": 30,
    "order_thresholds": [95, 80, 100],
    "expiring_days": [1, 7],
    "content_rejections": {"count": 3, "within_hours": 2},
    "operator": {"emails": ["noc@example.com"], "msisdns": ["84912000000"]},
    "partner_contacts": {"acme": {"emails": ["ops@acme.example"], "msisdns": ["84913000000"]}},
    "smtp": {
        "host": "smtp.example.com",
        "port": 587,
        "starttls": True,
        "username": "gw",
        "password_env": "SMTP_PW",
        "from": "gw@example.com",
    },
    "sms": {"source": "ALERT"},
    "utc_offset": "+07:00",
    "templates": {"quota": {"sms": "Don {order_id}: {percent}%"}},
}


def test_defaults_are_quiet() -> None:
    settings = AlertSettings()
    assert settings.order_thresholds == (80, 95, 100)
    assert settings.expiring_days == (7, 1)
    assert settings.check_interval == 60
    assert not settings.active  # nobody to tell: the daemon need not start it
    plan = settings.plan()
    assert plan.smtp is None
    assert plan.content_count == 10
    assert plan.content_window == 24 * 3600


def test_full_section_and_its_plan() -> None:
    settings = _load(FULL)
    assert settings.active
    assert settings.order_thresholds == (80, 95, 100)
    assert settings.expiring_days == (7, 1)
    plan = settings.plan()
    assert plan.check_interval == 30
    assert plan.content_window == 7200
    assert plan.utc_offset == timedelta(hours=7)
    assert plan.contacts("acme").msisdns == ("84913000000",)
    assert plan.contacts("other").emails == ()
    assert plan.smtp is not None
    assert plan.smtp.sender == "gw@example.com"
    assert plan.smtp.password == "s3cret-pw"
    assert plan.template(AlertKind.QUOTA).sms == "Don {order_id}: {percent}%"
    assert plan.template(AlertKind.QUOTA).subject == DEFAULT_TEMPLATES[AlertKind.QUOTA].subject


def test_the_smtp_password_never_shows() -> None:
    settings = _load(FULL)
    assert settings.smtp is not None
    for text in (repr(settings), str(settings), repr(settings.plan()), str(settings.model_dump())):
        assert "s3cret-pw" not in text


def test_password_comes_from_the_environment_only() -> None:
    smtp = {**FULL["smtp"], "password_env": "NOT_SET"}
    [(_, msg)] = _errors({**FULL, "smtp": smtp})
    assert "NOT_SET is not set" in msg
    inline = {**FULL["smtp"], "password": "plain"}
    assert any("password_env" in msg for _, msg in _errors({**FULL, "smtp": inline}))
    half = {k: v for k, v in FULL["smtp"].items() if k != "password_env"}
    assert any(
        "both username and password_env" in msg for _, msg in _errors({**FULL, "smtp": half})
    )


@pytest.mark.parametrize(
    ("patch", "where", "says"),
    [
        ({"order_thresholds": [0, 80]}, ("order_thresholds",), "1 to 100"),
        ({"order_thresholds": [80, 80]}, ("order_thresholds",), "once"),
        ({"expiring_days": [0]}, ("expiring_days",), "1 to 366"),
        ({"check_interval": 0}, ("check_interval",), "greater than or equal"),
        ({"content_rejections": {"count": 0}}, ("content_rejections", "count"), "greater"),
        ({"operator": {"emails": ["nope"]}}, ("operator", "emails"), "mail address"),
        ({"operator": {"msisdns": ["+84 91"]}}, ("operator", "msisdns"), "digits"),
        ({"sms": {"source": "A VERY LONG NAME"}}, ("sms", "source"), "brandname"),
        ({"utc_offset": "7"}, ("utc_offset",), "offset"),
        ({"templates": {"quota": {"sms": "{days} left"}}}, ("templates", "quota"), "days"),
        ({"templates": {"content": {"body": "{partner"}}}, ("templates", "content"), "malformed"),
        ({"smtp": None}, (), "no smtp server"),
        ({"alarms": {}}, ("alarms",), "Extra inputs"),
    ],
)
def test_each_problem_at_its_key(patch: dict[str, Any], where: tuple[str, ...], says: str) -> None:
    errors = _errors({**FULL, **patch})
    assert any(loc[: len(where)] == where and says in msg for loc, msg in errors), errors


def test_expiring_template_may_name_days() -> None:
    settings = _load({**FULL, "templates": {"expiring": {"sms": "{days} days: {expires_at}"}}})
    assert settings.plan().template(AlertKind.EXPIRING).sms == "{days} days: {expires_at}"


def test_partner_contacts_must_name_partners() -> None:
    settings = _load(FULL)
    assert alert_problems(settings, ["acme", "beta"]) == []
    assert alert_problems(settings, ["beta"]) == [
        (("alerts", "partner_contacts", "acme"), "no partner with system_id 'acme'")
    ]
