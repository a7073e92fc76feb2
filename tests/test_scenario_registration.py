"""Registration end to end on a real store: replies, member rows, exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scenario_fixtures import SUBSCRIBER, scenario, scenario_rig

if TYPE_CHECKING:
    from pathlib import Path

REGISTRATION = scenario(
    name="club",
    handler="registration",
    commands={"register": {"keywords": ["DK", "DANGKY"]}},
    sender={"reply": "8055", "brandname": "ACME"},
    replies={"registered": "Chao {name}, ma hoi vien {member_id}"},
    settings={
        "member_id": {
            "pattern": "{province}{digits:6}",
            "provinces": {"Hà Nội": "HN", "hn": "HN"},
            "default_province": "VN",
        }
    },
)


async def test_register_then_again_gives_the_same_id(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        [reply] = await rig.mo("dk Nguyen Van An HN")
        rows = await rig.query("SELECT member_id, msisdn, name, province FROM member")
        assert len(rows) == 1
        member_id, msisdn, name, province = rows[0]
        assert (msisdn, name, province) == (SUBSCRIBER, "Nguyen Van An", "HN")
        assert member_id.startswith("HN")
        assert len(member_id) == 8
        assert reply == f"Chao Nguyen Van An, ma hoi vien {member_id}"
        assert rig.sent[0][1].source_addr == "8055"

        [again] = await rig.mo("Đk Someone Else HCM")
        assert again == f"So {SUBSCRIBER} da dang ky truoc do. Ma hoi vien: {member_id}."
        assert await rig.query("SELECT count(*), max(name) FROM member") == [(1, "Nguyen Van An")]


async def test_redelivered_mo_is_processed_once(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        await rig.mo("DK An HN")
        assert await rig.redeliver() == []
        assert rig.engine.duplicates == 1
        assert await rig.query("SELECT count(*) FROM member") == [(1,)]
        log = await rig.query("SELECT direction, outcome, correlation FROM message_log ORDER BY id")
        assert [(d, o) for d, o, _ in log] == [("mo", "registered"), ("mt", "registered")]
        assert len({c for _, _, c in log}) == 1


async def test_missing_name_gets_the_syntax(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        assert await rig.mo("DK") == ["Sai cu phap. Soan: DK <name> <province> gui 8055."]
        assert await rig.query("SELECT count(*) FROM member") == [(0,)]


async def test_unknown_keyword_gets_help_and_is_logged(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        [reply] = await rig.mo("HELLO there")
        assert "8055" in reply
        assert await rig.query("SELECT direction, outcome FROM message_log ORDER BY id") == [
            ("mo", "help"),
            ("mt", "help"),
        ]


async def test_a_failing_handler_rolls_back_and_answers_the_error_reply(
    tmp_path: Path, monkeypatch: object
) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        handler = rig.engine.table.scenarios["club"].handler
        original = handler.handle

        def broken(ctx, mo):  # type: ignore[no-untyped-def]
            original(ctx, mo)  # writes the member...
            raise RuntimeError("boom")  # ...then fails: the member must not stay

        handler.handle = broken  # type: ignore[method-assign]
        [reply] = await rig.mo("DK An HN")
        assert reply.startswith("Sorry")
        assert await rig.query("SELECT count(*) FROM member") == [(0,)]
        assert await rig.query("SELECT processed_at IS NOT NULL FROM inbound") == [(1,)]
