"""A long scenario reply is cut like a partner's long message (``Admission.cut_room``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from scenario_fixtures import scenario, scenario_rig

from smppgw.protocol.text import SplitMode

if TYPE_CHECKING:
    from pathlib import Path

ECHO = scenario(name="echo", handler="echo", commands={"echo": {"keywords": ["E"]}})


@pytest.mark.parametrize(("room", "parts"), [(SplitMode.UDH8, 2), (SplitMode.UDH16, 3)])
async def test_a_long_reply_is_cut_to_the_room_every_carrier_takes(
    tmp_path: Path, room: SplitMode, parts: int
) -> None:
    """ "You said: " and 296 letters: 306 septets, two parts of 153 with an 8-bit UDH;
    three of at most 152 while some carrier wants the 16-bit reference (udh16)."""
    async with scenario_rig(tmp_path, ECHO) as rig:
        rig.engine.cut_room = room
        [reply] = await rig.mo("E " + "a" * 296)
        assert reply == "You said: " + "a" * 296
        message = rig.sent[0][1]
        assert len(message.parts) == parts
        assert all(len(p) <= 6 + (153 if room is SplitMode.UDH8 else 152) for p in message.parts)
