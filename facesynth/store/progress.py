"""Per-node, per-chunk progress inside the store, so an interrupted run continues.

Each node has an append-only JSON-lines file `<store>/_progress/<node_id>.jsonl`; one line
per finished unit of work: {"key": ..., "outputs": [{"port", "item"}...]}. Only the runtime's
supervisor writes it (one writer per file). A torn last line (a crash mid-write) is ignored.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


class Progress:
    """Finished work units per node, read at start and appended as the run goes."""

    def __init__(self, store_path: str | os.PathLike):
        self.dir = Path(store_path) / "_progress"

    def _file(self, node_id: str) -> Path:
        return self.dir / f"{node_id}.jsonl"

    def load(self, node_id: str) -> dict[str, list[dict]]:
        """key -> recorded outputs of every finished unit of `node_id`."""
        f = self._file(node_id)
        done: dict[str, list[dict]] = {}
        if not f.exists():
            return done
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[str(rec["key"])] = list(rec.get("outputs", []))
            except (ValueError, KeyError, TypeError):
                continue  # torn write from an interrupted run
        return done

    def mark(self, node_id: str, key: str, outputs: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "outputs": outputs}, separators=(",", ":"))
        with open(self._file(node_id), "a") as fh:
            fh.write(line + "\n")  # flushed on close; a torn line after a crash is skipped by load()

    def summary(self) -> dict[str, int]:
        """node_id -> number of finished units."""
        if not self.dir.exists():
            return {}
        return {f.stem: len(self.load(f.stem)) for f in sorted(self.dir.glob("*.jsonl"))}

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
