"""Snapshot tests pinning the layouts at 80x24 and 120x40 (update: pytest --snapshot-update)."""
from __future__ import annotations

from pathlib import Path

import pytest

from facesynth.tui.app import make_app
from facesynth.tui.sources import ReplaySource

RUNLOGS = Path(__file__).parent / "runlogs"


def app_for(name: str):
    return make_app(ReplaySource(RUNLOGS / f"{name}.jsonl"))


@pytest.mark.parametrize("name,size", [("normal", (80, 24)), ("failing", (80, 24)),
                                       ("training", (120, 40)), ("live", (120, 40))],
                         ids=["normal-80x24", "failing-80x24", "training-120x40", "live-120x40"])
def test_layout(snap_compare, name, size):
    assert snap_compare(app_for(name), terminal_size=size)


def test_node_detail_80x24(snap_compare):
    async def open_fill(pilot):
        pilot.app.query_one("#nodes").focus()
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()

    assert snap_compare(app_for("normal"), terminal_size=(80, 24), run_before=open_fill)
