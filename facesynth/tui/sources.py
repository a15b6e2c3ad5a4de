"""Where the dashboard's records come from: a growing run log, a finished one, a callback, or Ray.

Every source has `poll() -> list[dict]` (records not yet returned, never blocking for long),
`finished` (no more records will come) and `describe()`. Sources never raise on bad input: a
line that is not JSON (a log cut off mid-write) is counted in `bad_lines` and skipped.
"""
from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any, Callable

from facesynth.errors import FacesynthError, MissingDependencyError, UsageError
from facesynth.input_files import read_bytes

MAX_LINE = 16 * 1024 * 1024  # a record longer than this is garbage, not a record
MAX_REPLAY_BYTES = 256 * 1024 * 1024  # a replay holds every record in memory; a day of a live run is ~30 MB


def parse_line(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):  # a line nested 100,000 deep is not a record
        return None
    return rec if isinstance(rec, dict) else None


def newest_run_log(path: str | Path) -> Path:
    """A run log path as given, or the newest `*.jsonl` of a store's `<store>.runs/` directory."""
    p = Path(path)
    if p.is_file():
        return p
    candidates = [p, Path(f"{p}.runs")] if not str(p).endswith(".runs") else [p]
    for d in candidates:
        if d.is_dir():
            logs = sorted((f for f in d.glob("*.jsonl") if f.is_file()),  # no FIFO, device or dangling link
                          key=lambda f: (f.stat().st_mtime, f.name))
            if logs:
                return logs[-1]
    raise UsageError(f"no run log found at {p}: give a .jsonl run log, or a store path whose "
                     f"{p}.runs/ holds one (run `facesynth graph run GRAPH` first)")


class TailSource:
    """Follows a run log that may still be growing (like `tail -f`).

    Reads only complete lines; a partial last line stays buffered until its newline arrives.
    Once a `run_end` record was read the source is finished; a partial line left then is counted
    as bad (the writer died mid-line).
    """

    live = True

    def __init__(self, path: str | Path, max_bytes_per_poll: int = 8 * 1024 * 1024):
        self.path = Path(path)
        self.max_bytes = max_bytes_per_poll
        self._offset = 0
        self._buf = b""
        self.bad_lines = 0
        self.finished = False

    def describe(self) -> str:
        return f"following {self.path}"

    def poll(self) -> list[dict]:
        if self.finished:
            return []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read(self.max_bytes)
        except FileNotFoundError:
            return []  # not written yet
        self._offset += len(chunk)
        data = self._buf + chunk
        lines = data.split(b"\n")
        self._buf = lines.pop()  # incomplete tail (b"" when data ended with a newline)
        if len(self._buf) > MAX_LINE:
            self._buf, self.bad_lines = b"", self.bad_lines + 1
        out = []
        for line in lines:
            if not line.strip():
                continue
            rec = parse_line(line)
            if rec is None:
                self.bad_lines += 1
                continue
            out.append(rec)
            if rec.get("type") == "run_end":
                self.finished = True
        return out

    def close(self) -> None:
        pass


class ReplaySource:
    """Plays a finished run log back, at `speed` times its recorded pace (0 = all at once).

    A log cut off mid-line (the run was killed) replays up to its last whole record.
    """

    live = False

    def __init__(self, path: str | Path, speed: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.speed = speed
        self.clock = clock
        self.bad_lines = 0
        self.records: list[dict] = []
        for line in read_bytes(self.path, MAX_REPLAY_BYTES, what="run log").split(b"\n"):
            if not line.strip():
                continue
            rec = parse_line(line)
            if rec is None:
                self.bad_lines += 1
            else:
                self.records.append(rec)
        self._next = 0
        self._t0_clock: float | None = None
        self._t0_log = next((float(r["t"]) for r in self.records if isinstance(r.get("t"), (int, float))), 0.0)

    @property
    def finished(self) -> bool:
        return self._next >= len(self.records)

    def describe(self) -> str:
        pace = "all at once" if self.speed <= 0 else f"at {self.speed:g}x"
        return f"replaying {self.path} ({pace})"

    def poll(self) -> list[dict]:
        if self.speed <= 0:
            out, self._next = self.records[self._next:], len(self.records)
            return out
        now = self.clock()
        if self._t0_clock is None:
            self._t0_clock = now
        log_now = self._t0_log + (now - self._t0_clock) * self.speed
        start = self._next
        while self._next < len(self.records):
            t = self.records[self._next].get("t")
            if isinstance(t, (int, float)) and t > log_now:
                break
            self._next += 1
        return self.records[start:self._next]

    def close(self) -> None:
        pass


class QueueSource:
    """Records pushed from another thread (the runtime's `on_record` callback) while a run goes on."""

    live = True

    def __init__(self, name: str = "this run"):
        self.name = name
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self.finished = False
        self.bad_lines = 0

    def __call__(self, rec: dict) -> None:
        """The `on_record` callback: safe to call from any thread."""
        self._q.put(rec)

    def describe(self) -> str:
        return f"watching {self.name}"

    def poll(self, limit: int = 10000) -> list[dict]:
        out: list[dict] = []
        while len(out) < limit:
            try:
                rec = self._q.get_nowait()
            except queue.Empty:
                break
            out.append(rec)
            if isinstance(rec, dict) and rec.get("type") == "run_end":
                self.finished = True
        return out

    def close(self) -> None:
        pass


class ActorSource:
    """Asks the cluster's metrics actor (`facesynth_metrics` in namespace `facesynth`) for new records.

    `actor` is anything with `since.remote(n)`; `get` resolves what that returns (ray.get). The
    actor restarts its list when a new run starts, so each poll re-reads the last record seen:
    if it is gone or different, a new run began and is read from its start.
    """

    live = True

    def __init__(self, actor: Any, get: Callable[[Any], Any], label: str = "metrics actor", timeout_s: float = 2.0):
        self.actor, self.get, self.label, self.timeout_s = actor, get, label, timeout_s
        self._n = 0
        self.run_id: str | None = None
        self._last: dict | None = None
        self.finished = False
        self.bad_lines = 0
        self.error: str | None = None

    @classmethod
    def connect(cls, address: str) -> "ActorSource":
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency
            raise MissingDependencyError("ray is needed for --address: pip install ray==2.60.0") from exc
        from facesynth.runtime.runlog import METRICS_ACTOR

        if not ray.is_initialized():
            ray.init(address=address, namespace="facesynth", logging_level="ERROR", log_to_driver=False)
        try:
            actor = ray.get_actor(METRICS_ACTOR, namespace="facesynth")
        except ValueError as exc:
            raise FacesynthError(f"no metrics actor {METRICS_ACTOR!r} on the cluster at {address}: start a "
                                 f"graph there first (facesynth graph run GRAPH --address {address})") from exc
        return cls(actor, lambda ref: ray.get(ref, timeout=2.0), label=f"cluster {address}")

    def describe(self) -> str:
        return f"watching {self.label}" + (f" ({self.error})" if self.error else "")

    def poll(self) -> list[dict]:
        overlap = 1 if self._n > 0 else 0  # re-read the last record seen: is it still our run?
        try:
            recs = self.get(self.actor.since.remote(self._n - overlap))
        except Exception as exc:  # noqa: BLE001 - a lost cluster is shown, not raised
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return []
        self.error = None
        recs = [r for r in (recs or []) if isinstance(r, dict)]
        seqs = [r.pop("seq", None) for r in recs]  # positions: the metrics actor keeps a window
        if overlap:
            if not recs or recs[0] != self._last:
                self._n = 0  # the actor was reset by a new run: read that one from its start
                return []
            recs, seqs = recs[1:], seqs[1:]
        self._n = seqs[-1] + 1 if seqs and isinstance(seqs[-1], int) else self._n + len(recs)
        if recs:
            self._last = recs[-1]
        for r in recs:
            if r.get("type") == "run_start":
                self.run_id, self.finished = r.get("run_id"), False
            elif r.get("type") == "run_end":
                self.finished = True
        return recs

    def close(self) -> None:
        pass
