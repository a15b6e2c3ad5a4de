"""A live run that goes on for days keeps bounded memory and a bounded run-log rate."""
from __future__ import annotations

import json

from facesynth.graph.checks import load_graph
from facesynth.runtime.backends import LocalBackend
from facesynth.runtime.runlog import MetricsActor
from facesynth.runtime.supervisor import Supervisor


def test_the_metrics_actor_keeps_a_window_and_the_run_start():
    actor = MetricsActor(window=100)
    records = [{"type": "run_start", "run_id": "r1"}] + [{"type": "stats", "i": i} for i in range(1, 2500)]

    for i in range(0, len(records), 7):  # appended in small batches, as the supervisor does
        actor.append(records[i:i + 7])
    snap, from_start, tail = actor.snapshot(), actor.since(0), actor.since(2490)
    assert len(actor.recent) == 100 and len(snap) == 101  # the window, and run_start kept in front
    assert snap[0]["run_id"] == "r1" and from_start == snap
    assert [r["i"] for r in snap[1:]] == list(range(2400, 2500))  # the newest 100, in order
    assert [r["seq"] for r in tail] == list(range(2490, 2500)) == [r["i"] for r in tail]
    actor.append([{"type": "run_start", "run_id": "r2"}])  # a new run starts afresh
    assert [r.get("run_id") for r in actor.snapshot()] == ["r2"]


def test_an_idle_run_logs_stats_only_at_a_low_rate(tmp_path, make_graph):
    """An hour of stats every 0.5 s on a clock that is ours: 7200 records for the screen, one
    kept per 30 s while nothing changes, and every change kept at once."""
    now = [0.0]
    shown: list[dict] = []
    sup = Supervisor(load_graph(make_graph(tmp_path, frames=16)), LocalBackend(),
                     on_record=shown.append, clock=lambda: now[0])
    for _ in range(7200):
        sup._emit_stats()
        now[0] += 0.5
    blur = sup.plan.nodes["blur"].stats
    for _ in range(5):  # something happens: each change is logged
        blur.items += 1
        sup._emit_stats()
        now[0] += 0.5
    sup.log.close()
    logged = [json.loads(x) for x in sup.log.path.read_text().splitlines()]
    assert len(shown) == 7205 and all(r["type"] == "stats" for r in logged)
    idle = [r for r in logged if r["nodes"]["blur"]["items"] == 0]
    assert len(idle) == 3600 / 30
    assert [r["nodes"]["blur"]["items"] for r in logged[len(idle):]] == [1, 2, 3, 4, 5]
    assert sup.log.path.stat().st_size < 7200 * 700 / 20  # every record kept would be ~5 MB
