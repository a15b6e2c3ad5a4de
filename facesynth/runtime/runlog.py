"""The JSON-lines run log beside the store, and the Ray metrics actor that mirrors it.

Both carry the same records (docs/architecture.md, "Metrics and the run log"): the dashboard
tails the file, or asks the metrics actor of a cluster given with --address.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

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
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self._fh = open(self.path, "a", buffering=1)

    def write(self, record: dict) -> dict:
        record.setdefault("t", time.time())
        self._fh.write(json.dumps(record, default=_json_default, separators=(",", ":")) + "\n")
        return record

    def close(self) -> None:
        self._fh.close()


class MetricsActor:
    """Ray named actor holding the current run's records (for `dashboard --address`)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    async def append(self, records: list[dict]) -> int:
        for r in records:
            if r.get("type") == "run_start":
                self.records = []
            self.records.append(r)
        return len(self.records)

    async def since(self, n: int) -> list[dict]:
        return self.records[n:]

    async def snapshot(self) -> list[dict]:
        return list(self.records)


def metrics_actor(ray_module: Any) -> Any:
    """The cluster's metrics actor, created on first use."""
    cls = ray_module.remote(MetricsActor)
    return cls.options(name=METRICS_ACTOR, namespace="facesynth", get_if_exists=True,
                       lifetime="detached", num_cpus=0).remote()
