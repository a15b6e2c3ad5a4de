"""The JSON-lines run log beside the store, and the Ray metrics actor that mirrors it.

Both carry the same records (docs/architecture.md, "Metrics and the run log"): the dashboard
tails the file, or asks the metrics actor of a cluster given with --address.
"""
from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

from facesynth.errors import UsageError

METRICS_ACTOR = "facesynth_metrics"


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def run_log_dir(store_path: str | None, fallback: str = "data_store/runs") -> Path:
    """`<store>.runs/` beside the store; graphs without a store log under data_store/runs/."""
    return Path(f"{store_path}.runs") if store_path else Path(fallback)


class RunLog:
    """Appends records to `<dir>/<run_id>.jsonl`, flushed per write so readers see them live."""

    def __init__(self, directory: Path, run_id: str):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # it, or a folder above it, is a file
            raise UsageError(f"run logs go to {directory}, but it (or a folder above it) is a file, not a "
                             "directory; move that file away (facesynth does not delete it)") from None
        self.path = directory / f"{run_id}.jsonl"
        self._fh = open(self.path, "a", buffering=1)

    def write(self, record: dict) -> dict:
        record.setdefault("t", time.time())
        self._fh.write(json.dumps(record, default=_json_default, separators=(",", ":")) + "\n")
        return record

    def close(self) -> None:
        self._fh.close()


METRICS_WINDOW = 5000  # records the metrics actor keeps (about 40 minutes of a busy live run's stats)


class MetricsActor:
    """Ray named actor holding the current run's records (for `dashboard --address`).

    It keeps the run's `run_start` and the last `window` records: a live run that goes on for
    days does not grow it. Each record carries `seq`, its position in the run (run_start is 0);
    `since(n)` gives the kept records from position n on, and `since(0)` the run_start first,
    so a reader that fell behind (or arrives late) continues from the last `seq` it got.
    Plain (not async) methods: Ray runs a synchronous actor's calls from one submitter in the
    order they were made, an async actor's in any order (run_end could land before a stats record)."""

    def __init__(self, window: int = METRICS_WINDOW) -> None:
        self.window = max(1, window)
        self.start: dict | None = None
        self.recent: deque[dict] = deque(maxlen=self.window)
        self.total = 0  # records appended in this run

    @property
    def records(self) -> list[dict]:
        head = [self.start] if self.start is not None and self.total > len(self.recent) else []
        return head + list(self.recent)

    def append(self, records: list[dict]) -> int:
        for r in records:
            new_run = r.get("type") == "run_start"
            if new_run:
                self.total = 0
                self.recent.clear()
            rec = {**r, "seq": self.total}
            if new_run:
                self.start = rec
            self.recent.append(rec)
            self.total += 1
        return self.total

    def since(self, n: int) -> list[dict]:
        if n <= 0:
            return self.records
        first = self.total - len(self.recent)  # position of the oldest record kept
        return list(self.recent)[max(0, n - first):]

    def snapshot(self) -> list[dict]:
        return self.records


def metrics_actor(ray_module: Any) -> Any:
    """The cluster's metrics actor, created on first use."""
    cls = ray_module.remote(MetricsActor)
    return cls.options(name=METRICS_ACTOR, namespace="facesynth", get_if_exists=True,
                       lifetime="detached", num_cpus=0).remote()
