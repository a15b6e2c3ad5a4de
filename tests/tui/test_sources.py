"""Record sources: following a growing log, replaying a finished one, a callback queue, the metrics actor."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
from conftest import load

from facesynth.errors import UsageError
from facesynth.tui.sources import ActorSource, QueueSource, ReplaySource, TailSource, newest_run_log


def line(rec: dict) -> bytes:
    return (json.dumps(rec) + "\n").encode()


def test_tail_follows_a_growing_file_and_waits_for_whole_lines(tmp_path):
    path = tmp_path / "run.jsonl"
    src = TailSource(path)
    assert src.poll() == []  # not written yet
    recs = load("normal")
    data = b"".join(line(r) for r in recs[:3])
    with open(path, "wb") as fh:
        fh.write(data + line(recs[3])[:25])  # a record cut mid-write
        fh.flush()
        got = src.poll()
        assert [r["type"] for r in got] == [r["type"] for r in recs[:3]]
        assert src.poll() == []  # the partial line is held back, not counted as bad
        assert src.bad_lines == 0
        fh.write(line(recs[3])[25:])
        fh.flush()
        assert src.poll() == [recs[3]]
        fh.write(b"".join(line(r) for r in recs[4:]))
    rest = src.poll()
    assert len(rest) == len(recs) - 4 and rest[-1]["type"] == "run_end"
    assert src.finished and src.poll() == []


def test_tail_skips_garbage_lines(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_bytes(b'{"type":"run_start","nodes":[]}\n{not json}\n[1,2]\n\n' + line({"type": "run_end"}))
    src = TailSource(path)
    assert [r["type"] for r in src.poll()] == ["run_start", "run_end"]
    assert src.bad_lines == 2 and src.finished


def test_replay_of_a_log_cut_off_mid_line(tmp_path):
    raw = (tmp_path / "x").parent / "cut.jsonl"
    full = b"".join(line(r) for r in load("normal"))
    raw.write_bytes(full[: len(full) - 40])  # the writer died inside the run_end record
    src = ReplaySource(raw)
    recs = src.poll()
    assert len(recs) == len(load("normal")) - 1 and recs[-1]["type"] == "stats"
    assert src.bad_lines == 1 and src.finished


def test_replay_at_speed_follows_the_recorded_timestamps(runlogs):
    now = [100.0]
    src = ReplaySource(runlogs / "normal.jsonl", speed=2.0, clock=lambda: now[0])
    first = src.poll()  # t0: the records stamped at the very start
    assert [r["type"] for r in first] == ["run_start"]
    now[0] += 1.0  # 2 s of the recording
    got = src.poll()
    t0 = first[0]["t"]
    assert got and all(r["t"] - t0 <= 2.0 for r in got)
    assert got[-1]["type"] == "stats" and got[-1]["elapsed_s"] == 2.0
    now[0] += 1000
    assert src.poll()[-1]["type"] == "run_end" and src.finished


def test_queue_source_takes_records_from_another_thread():
    src = QueueSource("t")
    recs = load("normal")
    th = threading.Thread(target=lambda: [src(r) for r in recs])
    th.start()
    th.join()
    assert src.poll(limit=5) == recs[:5]
    assert src.poll() == recs[5:] and src.finished


class FakeRef:
    def __init__(self, value):
        self.value = value


class FakeMethod:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return FakeRef(self.fn(*args))


class FakeMetricsActor:
    """Same methods as facesynth.runtime.runlog.MetricsActor, called the Ray way (method.remote)."""

    def __init__(self):
        self.records: list[dict] = []
        self.since = FakeMethod(lambda n: self.records[n:])
        self.snapshot = FakeMethod(lambda: list(self.records))


def test_actor_source_reads_incrementally_and_notices_a_new_run():
    actor = FakeMetricsActor()
    src = ActorSource(actor, get=lambda ref: ref.value, label="fake")
    recs = load("normal")
    assert src.poll() == []
    actor.records += recs[:4]
    assert src.poll() == recs[:4]
    actor.records += recs[4:]
    assert src.poll() == recs[4:] and src.finished
    actor.records = load("failing")[:2]  # a new run replaced the list (shorter than what we read)
    assert src.poll() == []
    assert src.poll() == load("failing")[:2] and not src.finished
    actor.records = load("live")  # a new run already longer than the old one
    assert src.poll() == []
    assert src.poll() == load("live") and src.finished


def test_actor_source_shows_a_lost_cluster_instead_of_raising():
    def boom(_ref):
        raise TimeoutError("no answer")

    src = ActorSource(FakeMetricsActor(), get=boom, label="fake")
    assert src.poll() == [] and "TimeoutError" in src.describe()


def test_newest_run_log_of_a_store(tmp_path):
    store = tmp_path / "s.zarr"
    runs = tmp_path / "s.zarr.runs"
    runs.mkdir()
    old, new = runs / "20260101-000000-000.jsonl", runs / "20260102-000000-000.jsonl"
    old.write_text("{}\n")
    new.write_text("{}\n")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert newest_run_log(store) == new
    assert newest_run_log(runs) == new
    assert newest_run_log(old) == old
    with pytest.raises(UsageError, match="no run log found"):
        newest_run_log(tmp_path / "other.zarr")


@pytest.mark.ray
def test_actor_source_against_the_real_metrics_actor():
    ray = pytest.importorskip("ray")
    from facesynth.runtime.runlog import metrics_actor

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=1, include_dashboard=False, namespace="facesynth", _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    try:
        actor = metrics_actor(ray)
        recs = load("normal")
        ray.get(actor.append.remote(recs[:7]))
        src = ActorSource.connect("auto")  # Ray is up: connect finds the named actor
        assert src.poll() == recs[:7]
        ray.get(actor.append.remote(recs[7:]))
        assert src.poll() == recs[7:] and src.finished
    finally:
        ray.shutdown()
