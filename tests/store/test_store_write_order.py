"""A chunk's `<group>/ok` flags are written after every other array of that chunk, so a reader
(another stage, another replica) that meets a chunk still being written never takes the missing
chunk files for damage (seen as a StoreDamaged on landmarks/done in a real Ray run)."""
from __future__ import annotations

from collections import defaultdict

from store_helpers import pipeline_graph

from facesynth.cli import main
from facesynth.store.frame_store import FrameStore


def test_every_stage_writes_a_chunks_ok_flags_last(tmp_path, capsys, monkeypatch):
    writes: list[tuple[str, int]] = []
    original = FrameStore.write

    def recording_write(self, name, start, data):
        writes.append((name, int(start)))
        return original(self, name, start, data)

    monkeypatch.setattr(FrameStore, "write", recording_write)
    store = tmp_path / "store.zarr"
    assert main(["graph", "run", pipeline_graph(tmp_path, store), "--local", "--quiet"]) == 0
    capsys.readouterr()

    order: dict[tuple[str, int], list[str]] = defaultdict(list)
    for name, start in writes:
        group, _, leaf = name.rpartition("/")
        order[(group, start)].append(leaf)
    groups = {g for g, _ in order}
    assert {"raw", "landmarks", "crop", "fill"} <= groups
    for (group, start), leaves in order.items():
        assert "ok" in leaves, (group, start, leaves)
        assert leaves[-1] == "ok" and leaves.count("ok") == 1, (group, start, leaves)
        assert len(leaves) >= 2, (group, start, leaves)
