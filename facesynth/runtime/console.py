"""Plain terminal progress while a graph runs (the Textual dashboard is `--tui`)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from facesynth.runtime.stats import StatsGate
from facesynth.terminal_text import terminal_safe


def _fmt_node(nid: str, s: dict) -> str:
    total = f"/{s['total']}" if s.get("total") else ""
    extra = f" err={s['errors']}" if s.get("errors") else ""
    extra += f" restarts={s['restarts']}" if s.get("restarts") else ""
    extra += f" skipped={s['skipped']}" if s.get("skipped") else ""
    return f"{nid}[{s['state']}] {s['items']}{total} {s['rate']:.1f}/s busy {s['busy_pct']:.0f}%{extra}"


class ConsoleProgress:
    """Prints one status line every `period_s` (overwritten in place on a terminal). Into a file
    or a pipe, a line is printed only when a count changed, or once a minute while idle."""

    def __init__(self, out: TextIO | None = None, period_s: float = 2.0):
        self.out = out or sys.stderr
        self.period_s = period_s
        self._last = 0.0
        self.tty = self.out.isatty()
        self._train = ""  # latest training position, shown on the status line
        self._gate = StatsGate(idle_period_s=60.0)

    def __call__(self, rec: dict) -> None:
        kind = rec.get("type")
        if kind == "stats":
            now = time.monotonic()
            if now - self._last < self.period_s or (not self.tty and not self._gate.admit(rec)):
                return
            self._last = now
            line = f"[{rec['elapsed_s']:6.1f}s] " + " | ".join(_fmt_node(n, s) for n, s in rec["nodes"].items())
            line += self._train
            if self.tty:
                self.out.write("\r\x1b[2K" + terminal_safe(line, newlines=False)[: 400])
            else:
                self.out.write(terminal_safe(line, newlines=False) + "\n")
        elif kind == "error":
            self.out.write(("\n" if self.tty else "") + terminal_safe(
                f"error in {rec['node']} on {rec['chunk']}: {rec['error']}"
                + (" (fatal)" if rec.get("fatal") else f" (restart {rec['restart']})")) + "\n")
        elif kind == "event" and rec.get("name") == "train.step":
            losses = " ".join(f"{k}={v:.3g}" for k, v in (rec.get("losses") or {}).items() if isinstance(v, (int, float)))
            self._train = (f" | training epoch {rec.get('epoch')}/{rec.get('epochs')} "
                           f"step {rec.get('step')}/{rec.get('steps')} {losses}")
        elif kind == "event" and rec.get("tally"):  # a counted warning, e.g. capture.damaged
            self._warned = getattr(self, "_warned", 0) + 1
            if self._warned <= 20:
                what = rec.get("error") or {k: v for k, v in rec.items() if k not in ("type", "t", "name", "replica")}
                self.out.write(("\n" if self.tty else "") + terminal_safe(f"warning: {rec['name']} ({rec['tally']}): {what}") + "\n")
        elif kind == "event" and rec.get("name") in ("train.epoch", "live.stats", "capture.rejects"):
            data = {k: v for k, v in rec.items() if k not in ("type", "t", "name", "replica")}
            self.out.write(("\n" if self.tty else "") + terminal_safe(f"{rec['name']}: {data}") + "\n")
        elif kind == "run_end":
            self.out.write(("\n" if self.tty else "") + terminal_safe(f"run {rec['status']} in {rec['elapsed_s']:.1f}s") + "\n")
        self.out.flush()
