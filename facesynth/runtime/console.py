"""What `facesynth graph run` shows while a graph runs (the Textual dashboard is `--tui`).

- `BarsConsole`: on a terminal, one progress bar per stage (items/total, rate, time left) and one
  for training (step/steps, time left), drawn by rich; one line per evaluation and per warning
  above them; a live graph's stats as one line updated in place.
- `ConsoleProgress`: into a pipe or a file, plain lines: the same event lines, and a progress line
  when counts changed, at most one per `period_s`. No control codes.
- `JsonConsole` (`--json`): the same, as one JSON object per line on stdout, for scripts.
The lines themselves are made in console_text.py. The run log stays the full record.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, TextIO

from facesynth.runtime import console_text as ct
from facesynth.runtime.stats import StatsGate
from facesynth.tui.state import RunState

MAX_WARNING_LINES = 20  # more are counted (the summary says how many), and kept in the run log
LABEL_WIDTH = 10        # bar labels: node ids and "training", padded to line the bars up


def stage(state: RunState, nid: str) -> dict:
    """A node as the console shows it: items, total (estimated from its producers while the
    runtime does not know it yet), state, recent rate, time left (tui/state.py's arithmetic)."""
    nv = state.nodes[nid]
    return {"items": nv.items, "total": nv.expected(), "estimated": nv.total is None and nv.estimate is not None,
            "state": nv.state, "rate": round(nv.recent_rate(), 3), "remaining_s": state.node_eta_s(nid)}


def training(state: RunState) -> dict | None:
    """Training position over the whole run (step/steps) and time left, from its events."""
    tv = state.train
    if tv is None or not tv.steps or not tv.epochs:
        return None
    step = min((tv.epoch - 1) * tv.steps + tv.step, tv.epochs * tv.steps) if tv.epoch else tv.step
    return {"step": max(step, 0), "steps": tv.epochs * tv.steps, "remaining_s": tv.eta_s()}


class _Console:
    """Shared bookkeeping: which records become lines; subclasses decide where lines go."""

    def __init__(self, period_s: float):
        self.period_s = period_s
        self.state = RunState()    # the dashboard's fold of the records: totals, rates, ETAs
        self.live = False          # a graph without a store: runs until stopped
        self.warnings = 0          # counted warnings seen (lines shown for the first MAX_WARNING_LINES)
        self._last_status = float("-inf")
        self._gate = StatsGate(idle_period_s=60.0)
        self._last_train_step: int | None = None

    # subclasses
    def line(self, text: str, rec: dict | None = None) -> None:
        raise NotImplementedError

    def progress(self, stats: dict) -> None:
        """A stats record: bars, or a progress line when something changed."""

    def live_stats(self, rec: dict) -> None:
        self.line(ct.live_stats_line(rec), rec)

    def close(self) -> None:
        """The run has ended: stop drawing."""

    def stages(self) -> dict[str, dict]:
        """Every node's stage, but a training node's while its training position stands for it."""
        trainer = self.state.train.node if self.state.train is not None and training(self.state) else None
        return {nid: stage(self.state, nid) for nid in self.state.nodes if nid != trainer}

    def __call__(self, rec: dict) -> None:
        self.state.apply(rec)
        kind = rec.get("type")
        if kind == "run_start":
            self.live = rec.get("store") is None
        elif kind == "stats":
            self.progress(rec)
        elif kind == "error":
            self.line(ct.error_line(rec), rec)
        elif kind == "event":
            self._event(rec)
        elif kind == "run_end":
            self.close()
            if rec.get("status") != "ok" and not (self.live and rec.get("status") == "interrupted"):
                self.line(f"run {ct.terminal_safe(rec.get('status'))} after {ct.duration(rec.get('elapsed_s'))}", rec)

    def _event(self, rec: dict) -> None:
        name = rec.get("name")
        if name == "train.step":
            return
        if name == "live.stats":
            self.live_stats(rec)
            return
        if isinstance(rec.get("tally"), str):
            self.warnings += 1
            if self.warnings > MAX_WARNING_LINES:
                if self.warnings == MAX_WARNING_LINES + 1:
                    self.line("(more warnings are counted in the summary; the run log has each one)")
                return
        text = ct.event_line(rec)
        if text is not None:
            self.line(text, rec)

    def _status_due(self, stats: dict) -> bool:
        """A progress line for a pipe: at most one per period, when a count changed (or once a minute)."""
        now = time.monotonic()
        if now - self._last_status < self.period_s:
            return False
        step = (training(self.state) or {}).get("step")
        if not self._gate.admit(stats) and step == self._last_train_step:
            return False
        self._last_status, self._last_train_step = now, step
        return True


class ConsoleProgress(_Console):
    """Plain lines into a pipe or a file (or a terminal that should not be drawn on)."""

    def __init__(self, out: TextIO | None = None, period_s: float = 10.0):
        super().__init__(period_s)
        self.out = out or sys.stderr
        self._live_t: dict[str, float] = {}
        self._unshown: dict | None = None  # the newest stats record not printed yet
        self._last_status_text = ""

    def line(self, text: str, rec: dict | None = None) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, stats: dict) -> None:
        self._unshown = stats
        if not self.live and self._status_due(stats):
            self._status(stats)

    def _status(self, stats: dict) -> None:
        text = ct.status_line(stats.get("elapsed_s"), self.stages(), training(self.state))
        if text != self._last_status_text:
            self.line(text)
        self._unshown, self._last_status_text = None, text

    def close(self) -> None:
        """The last progress line, where the run ended (a pipe's reader sees every stage finish)."""
        if self._unshown is not None and not self.live:
            self._status(self._unshown)

    def live_stats(self, rec: dict) -> None:
        """A live graph reports every second: one line per node per period, and the final one."""
        node, now = str(rec.get("node")), time.monotonic()
        if rec.get("final") or now - self._live_t.get(node, float("-inf")) >= self.period_s:
            self._live_t[node] = now
            self.line(ct.live_stats_line(rec), rec)


def _json_clean(v: Any) -> Any:
    """Strict JSON: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(v, dict):
        return {str(k): _json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_clean(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float) or hasattr(v, "__float__"):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return f if math.isfinite(f) else None
    return str(v)


def json_line(obj: dict) -> str:
    return json.dumps(_json_clean(obj), allow_nan=False, separators=(",", ":"))


class JsonConsole(ConsoleProgress):
    """`--json`: the lines a person would see, as JSON objects on stdout (one per line): the
    event records as the run log has them (tracebacks left out), `progress` objects, the summary."""

    def __init__(self, out: TextIO | None = None, period_s: float = 10.0):
        super().__init__(out or sys.stdout, period_s)

    def line(self, text: str, rec: dict | None = None) -> None:
        if rec is None:
            return
        self.out.write(json_line({k: v for k, v in rec.items() if k != "traceback"}) + "\n")
        self.out.flush()

    def progress(self, stats: dict) -> None:
        if self.live or not self._status_due(stats):
            return
        self.line("", {"type": "progress", "elapsed_s": stats.get("elapsed_s"), "stages": self.stages(),
                       "training": training(self.state)})


class BarsConsole(_Console):
    """On a terminal: rich progress bars for the stages and for training, lines above them."""

    def __init__(self, out: TextIO | None = None, rich_console: Any = None):
        super().__init__(period_s=0.0)
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.text import Text

        self._Text = Text
        self.console = rich_console or Console(file=out or sys.stderr, highlight=False, markup=False, emoji=False)
        self.bars = Progress(TextColumn("{task.description}", markup=False), BarColumn(bar_width=32),
                             TextColumn("{task.fields[info]}", markup=False), console=self.console,
                             auto_refresh=False)
        self._tasks: dict[str, Any] = {}
        self._live_lines: dict[str, str] = {}
        self._live_text = Text()
        self._view = Live(Group(self.bars, self._live_text), console=self.console, refresh_per_second=4,
                          transient=False, redirect_stdout=True, redirect_stderr=True)
        self._started = False
        self._closed = False

    def _start(self) -> None:
        if not self._started and not self._closed:
            self._started = True
            self._view.start()

    def line(self, text: str, rec: dict | None = None) -> None:
        self.console.print(self._Text(text), soft_wrap=True)

    def _event(self, rec: dict) -> None:
        super()._event(rec)
        t = training(self.state) if rec.get("name") in ("train.step", "train.epoch") else None
        if t is not None:
            node = str(rec.get("node"))
            if node in self._tasks:  # its training bar says more than "7/7"
                self.bars.remove_task(self._tasks.pop(node))
            self._bar("training", f"{'training':<{LABEL_WIDTH}}", t["step"], t["steps"],
                      ct.training_text(t).removeprefix("training "))

    def _bar(self, key: str, label: str, done: int, total: int | None, info: str) -> None:
        self._start()
        if key not in self._tasks:
            self._tasks[key] = self.bars.add_task(ct.terminal_safe(label), total=total, info=info)
        self.bars.update(self._tasks[key], completed=done, total=total, info=info)

    def progress(self, stats: dict) -> None:
        if self.live:
            return
        for node, s in self.stages().items():
            info = ct.stage_text(node, s).removeprefix(ct.terminal_safe(node) + " ")
            self._bar(node, f"{ct.terminal_safe(node):<{LABEL_WIDTH}}", s["items"], s["total"], info)
        self._refresh()

    def live_stats(self, rec: dict) -> None:
        self._start()
        self._live_lines[str(rec.get("node"))] = ct.live_stats_line(rec)
        self._live_text.plain = "\n".join(self._live_lines.values())
        self._refresh()

    def _refresh(self) -> None:
        if self._started and not self._closed:
            self._view.refresh()

    def close(self) -> None:
        if self._started and not self._closed:
            self._view.refresh()
            self._view.stop()
        self._closed = True


def make_console(mode: str = "auto", out: TextIO | None = None) -> _Console | None:
    """The console for `graph run`: "json", "quiet" (None: nothing while it runs), or "auto":
    bars on a terminal, plain lines into a pipe or a file."""
    if mode == "quiet":
        return None
    if mode == "json":
        return JsonConsole()
    out = out or sys.stderr
    if out.isatty():
        return BarsConsole(out)
    return ConsoleProgress(out)
