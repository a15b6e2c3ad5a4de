"""What the dashboard knows about a run: run-log records folded into plain state.

Kept free of Textual so the arithmetic (recent rates, ETAs, loss history) is testable on its own.
Every field is read with defaults: a record from an older or newer runtime, or one cut short,
must never crash the view.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

HISTORY = 60  # stats samples kept per node (sparklines, recent rate)
RATE_WINDOW_S = 10.0  # recent rate is measured over this many seconds of run time
BLOCKS = "▁▂▃▄▅▆▇█"
NODE_STATES = ("waiting", "running", "finishing", "done", "failed")


def sparkline(values: list[float] | deque, width: int = 12) -> str:
    """The last `width` values as block characters scaled to their own maximum."""
    vals = [float(v) for v in list(values)[-width:] if v is not None]
    if not vals:
        return ""
    top = max(vals)
    low = min(0.0, min(vals))
    span = top - low
    if span <= 0:
        return BLOCKS[0] * len(vals)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - low) / span * (len(BLOCKS) - 1) + 0.5))] for v in vals)


def fmt_duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `12s`; `-` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _num(v: Any, default: float = 0.0) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


@dataclass
class NodeView:
    id: str
    kind: str = "?"
    replicas: int = 1
    inputs: dict[str, list[str]] = field(default_factory=dict)
    state: str = "waiting"
    items: int = 0
    total: int | None = None
    rate: float = 0.0
    busy_pct: float = 0.0
    busy_s: float = 0.0
    errors: int = 0
    restarts: int = 0
    skipped: int = 0
    rates: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    samples: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # (elapsed_s, items)
    events: deque = field(default_factory=lambda: deque(maxlen=20))
    last_error: dict | None = None

    def recent_rate(self) -> float:
        """Items per second over the last RATE_WINDOW_S of run time (the run average once finished)."""
        if len(self.samples) >= 2 and self.state not in ("done", "failed"):
            t1, n1 = self.samples[-1]
            for t0, n0 in self.samples:
                if t1 - t0 <= RATE_WINDOW_S and t1 > t0:
                    return max(0.0, (n1 - n0) / (t1 - t0))
        return self.rate

    estimate: int | None = None  # expected total from upstream while the runtime does not know it yet

    def expected(self) -> int | None:
        return self.total or self.estimate

    def eta_s(self) -> float | None:
        if self.state in ("done", "failed"):
            return 0.0 if self.state == "done" else None
        total = self.expected()
        if not total:
            return None
        rate = self.recent_rate() or self.rate
        left = max(0, total - self.items)
        return left / rate if rate > 0 else (0.0 if left == 0 else None)

    def fraction(self) -> float | None:
        if self.state == "done":
            return 1.0
        total = self.expected()
        if not total:
            return None
        return min(1.0, self.items / total)


@dataclass
class EdgeView:
    id: str
    src: str = ""
    dst: str = ""
    bound: int = 0
    policy: str = "block"
    depth: int = 0
    max_depth: int = 0
    blocked_s: float = 0.0
    drops: int = 0
    sent: int = 0


@dataclass
class TrainView:
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    node: str = ""
    losses: dict[str, deque] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    eval_epoch: int | None = None
    preview: str | None = None
    checkpoint: str | None = None
    fraction: float | None = None  # of all epochs, from the latest step or epoch event
    samples: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # (t, fraction)

    def note(self, t: Any) -> None:
        if self.fraction is not None and isinstance(t, (int, float)):
            if not self.samples or t > self.samples[-1][0]:
                self.samples.append((float(t), self.fraction))

    def eta_s(self) -> float | None:
        """Time to the last epoch's end at the pace of the recent steps (not counting evals)."""
        if self.fraction is None or self.fraction >= 1.0:
            return 0.0 if self.fraction is not None else None
        if len(self.samples) < 2:
            return None
        (t0, f0), (t1, f1) = self.samples[0], self.samples[-1]
        if t1 <= t0 or f1 <= f0:
            return None
        return (1.0 - f1) * (t1 - t0) / (f1 - f0)


@dataclass
class LiveView:
    fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    generator_ms: float | None = None
    drops: int = 0
    fps_history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))


class RunState:
    """Folds run-log records, in order, into what the widgets show."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.run_id = ""
        self.graph = ""
        self.file = ""
        self.store: str | None = None
        self.backend = ""
        self.status = "waiting"  # waiting, running, ok, failed, interrupted
        self.end_error: str | None = None
        self.elapsed_s = 0.0
        self.nodes: dict[str, NodeView] = {}
        self.edges: dict[str, EdgeView] = {}
        self.train: TrainView | None = None
        self.live: LiveView | None = None
        self.errors: list[dict] = []
        self.rejects: dict[str, dict] = {}
        self.records = 0
        self.bad_lines = 0
        self.version = 0  # bumped when the node/edge set changes (tables rebuild)

    @property
    def ended(self) -> bool:
        return self.status in ("ok", "failed", "interrupted")

    def node(self, nid: str) -> NodeView:
        if nid not in self.nodes:
            self.nodes[nid] = NodeView(nid)
            self.version += 1
        return self.nodes[nid]

    def apply_all(self, records: list[dict]) -> None:
        for rec in records:
            self.apply(rec)

    def apply(self, rec: Any) -> None:
        if not isinstance(rec, dict):
            self.bad_lines += 1
            return
        self.records += 1
        kind = rec.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            try:
                handler(rec)
            except (TypeError, ValueError, AttributeError, KeyError):
                self.bad_lines += 1  # a malformed record is counted, never fatal

    # ---- record kinds ------------------------------------------------------------------
    def _on_run_start(self, rec: dict) -> None:
        self.reset()
        self.records = 1
        self.run_id = str(rec.get("run_id", ""))
        self.graph = str(rec.get("graph", ""))
        self.file = str(rec.get("file") or "")
        self.store = rec.get("store")
        self.backend = str(rec.get("backend", ""))
        self.status = "running"
        for n in rec.get("nodes") or []:
            nv = self.node(str(n.get("id")))
            nv.kind = str(n.get("kind", "?"))
            nv.replicas = int(n.get("replicas") or 1)
            ins = n.get("inputs") or {}
            nv.inputs = {p: ([v] if isinstance(v, str) else list(v or [])) for p, v in ins.items()}
        for e in rec.get("edges") or []:
            ev = EdgeView(str(e.get("id")), str(e.get("src", "")), str(e.get("dst", "")),
                          int(e.get("queue") or 0), str(e.get("policy", "block")))
            self.edges[ev.id] = ev
        self.version += 1

    def _on_stats(self, rec: dict) -> None:
        if self.status == "waiting":
            self.status = "running"
        self.elapsed_s = _num(rec.get("elapsed_s"), self.elapsed_s)
        for nid, s in (rec.get("nodes") or {}).items():
            nv = self.node(nid)
            prev = nv.samples[-1] if nv.samples else None
            nv.state = str(s.get("state", nv.state))
            nv.items = int(_num(s.get("items"), nv.items))
            total = s.get("total")
            nv.total = int(total) if isinstance(total, (int, float)) else None
            nv.replicas = int(s.get("replicas") or nv.replicas)
            nv.rate = _num(s.get("rate"))
            nv.busy_s = _num(s.get("busy_s"))
            nv.busy_pct = _num(s.get("busy_pct"))
            nv.errors = int(_num(s.get("errors")))
            nv.restarts = int(_num(s.get("restarts")))
            nv.skipped = int(_num(s.get("skipped")))
            if prev is not None and self.elapsed_s > prev[0]:
                nv.rates.append(max(0.0, (nv.items - prev[1]) / (self.elapsed_s - prev[0])))
            if prev is None or self.elapsed_s > prev[0]:
                nv.samples.append((self.elapsed_s, nv.items))
        self._estimate_totals()
        for eid, s in (rec.get("edges") or {}).items():
            ev = self.edges.get(eid)
            if ev is None:
                ev = self.edges[eid] = EdgeView(eid)
                self.version += 1
            ev.depth = int(_num(s.get("depth")))
            ev.bound = int(_num(s.get("bound"), ev.bound))
            ev.max_depth = int(_num(s.get("max_depth"), max(ev.max_depth, ev.depth)))
            ev.blocked_s = _num(s.get("blocked_s"))
            ev.drops = int(_num(s.get("drops")))
            ev.sent = int(_num(s.get("sent")))

    def _on_event(self, rec: dict) -> None:
        name = str(rec.get("name", ""))
        nid = rec.get("node")
        if nid:
            self.node(str(nid)).events.append(rec)
        if name == "train.step":
            tv = self.train or TrainView()
            self.train = tv
            tv.node = str(nid or tv.node)
            tv.epoch = int(_num(rec.get("epoch"), tv.epoch))
            tv.epochs = int(_num(rec.get("epochs"), tv.epochs))
            tv.step = int(_num(rec.get("step"), tv.step))
            tv.steps = int(_num(rec.get("steps"), tv.steps))
            if tv.epochs and tv.steps:
                tv.fraction = min(1.0, (tv.epoch - 1 + tv.step / tv.steps) / tv.epochs)
            tv.note(rec.get("t"))
            for k, v in (rec.get("losses") or {}).items():
                tv.losses.setdefault(k, deque(maxlen=HISTORY * 4)).append(_num(v))
        elif name == "train.epoch":
            tv = self.train or TrainView()
            self.train = tv
            tv.node = str(nid or tv.node)
            tv.epoch = int(_num(rec.get("epoch"), tv.epoch))
            tv.epochs = int(_num(rec.get("epochs"), tv.epochs))
            if tv.epochs:
                tv.fraction = min(1.0, tv.epoch / tv.epochs)
            tv.note(rec.get("t"))
            if isinstance(rec.get("eval"), dict) and rec["eval"]:
                tv.eval = {k: _num(v) for k, v in rec["eval"].items()}
                tv.eval_epoch = tv.epoch
            tv.preview = rec.get("preview") or tv.preview
            tv.checkpoint = rec.get("checkpoint") or tv.checkpoint
        elif name == "live.stats":
            lv = self.live or LiveView()
            self.live = lv
            lv.fps = _num(rec.get("fps"))
            lat = rec.get("latency_ms") or {}
            lv.latency_ms = {k: _num(v) for k, v in lat.items()} if isinstance(lat, dict) else {}
            gen = rec.get("generator_ms")
            lv.generator_ms = _num(gen) if gen is not None else None
            lv.drops = int(_num(rec.get("drops"), lv.drops))
            lv.fps_history.append(lv.fps)
        elif name == "capture.rejects":
            counts = rec.get("counts") if isinstance(rec.get("counts"), dict) else {
                k: v for k, v in rec.items() if k not in ("type", "t", "name", "node", "replica")}
            self.rejects[str(nid or "?")] = counts

    def _on_error(self, rec: dict) -> None:
        self.errors.append(rec)
        nid = rec.get("node")
        if nid:
            nv = self.node(str(nid))
            nv.last_error = rec
            if rec.get("fatal"):
                nv.state = "failed"

    def _on_run_end(self, rec: dict) -> None:
        self.status = str(rec.get("status") or "ok")
        self.end_error = rec.get("error")
        self.elapsed_s = _num(rec.get("elapsed_s"), self.elapsed_s)

    def _estimate_totals(self) -> None:
        """Chunks are aligned across stages, so a stage expects as many items as its producers
        (the largest of them); refined by the runtime's own total once its inputs are done."""
        for _ in range(len(self.nodes)):  # settles along the longest chain
            changed = False
            for nv in self.nodes.values():
                if nv.total or not nv.inputs:
                    continue
                ups = [self.nodes[src.split("/")[0]].expected() for srcs in nv.inputs.values() for src in srcs
                       if src.split("/")[0] in self.nodes]
                est = max(ups) if ups and all(ups) else None
                if est != nv.estimate:
                    nv.estimate, changed = est, True
            if not changed:
                break

    # ---- summaries -----------------------------------------------------------------------
    def overall(self) -> tuple[int, int]:
        """(nodes done, nodes) for the status line."""
        return sum(1 for n in self.nodes.values() if n.state == "done"), len(self.nodes)

    def node_eta_s(self, nid: str) -> float | None:
        """A stage's ETA; a training node's comes from its epochs and steps, not its one item."""
        n = self.nodes[nid]
        if self.train is not None and self.train.node == nid and n.state not in ("done", "failed"):
            return self.train.eta_s()
        return n.eta_s()

    def eta_s(self) -> float | None:
        """Time left for the whole run: the slowest stage's ETA (None while any is unknown)."""
        if self.ended or not self.nodes:
            return None
        etas = [self.node_eta_s(nid) for nid, n in self.nodes.items() if n.state != "done"]
        return max(etas) if etas and all(e is not None for e in etas) else None

    def failing_error(self) -> dict | None:
        """The error to show: the fatal one if any, else the latest."""
        for rec in reversed(self.errors):
            if rec.get("fatal"):
                return rec
        return self.errors[-1] if self.errors else None
