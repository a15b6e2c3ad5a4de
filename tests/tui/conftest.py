"""Shared helpers for the dashboard tests: the recorded run logs and a record loader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

RUNLOGS = Path(__file__).parent / "runlogs"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (RUNLOGS / f"{name}.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def runlogs() -> Path:
    return RUNLOGS
