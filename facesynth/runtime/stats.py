"""The run's `stats` records, and which of them are worth keeping.

The supervisor builds a stats record every STATS_PERIOD_S for the screen. The run log and the
metrics actor keep one only when it says something new (a count, a state or a queue changed),
or, while nothing changes, one per IDLE_PERIOD_S: an idle live run's log grows by about one
line every half minute instead of two a second.
"""
from __future__ import annotations

import time
from typing import Any, Callable

STATS_PERIOD_S = 0.5   # how often a stats record is built (screen refresh)
IDLE_PERIOD_S = 30.0   # while nothing changes, one record kept per this many seconds

# what makes a stats record new: counts and states, not the clock-driven rates and times
_NODE_FIELDS = ("state", "replicas", "items", "total", "errors", "restarts", "skipped", "calls")
_EDGE_FIELDS = ("depth", "bound", "drops", "sent", "max_depth")


def stats_record(plan: Any, t0: float, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    nodes = {}
    for pn in plan.nodes.values():
        s = pn.stats
        span = ((s.ended or now) - s.started) if s.started else 0.0
        nodes[pn.id] = {
            "state": s.state, "replicas": s.replicas, "items": s.items, "total": s.total,
            "rate": round(s.items / span, 3) if span > 0 else 0.0, "busy_s": round(s.busy_s, 4),
            "busy_pct": round(100.0 * s.busy_s / (span * s.replicas), 1) if span > 0 else 0.0,
            "errors": s.errors, "restarts": s.restarts, "skipped": s.skipped, "calls": s.calls,
        }
        if s.warnings:
            nodes[pn.id]["warnings"] = {k: dict(v) for k, v in s.warnings.items()}
    edges = {e.id: {"depth": e.depth, "bound": e.bound, "blocked_s": round(e.stats.blocked_s, 4),
                    "drops": e.stats.drops, "sent": e.stats.sent, "max_depth": e.stats.max_depth}
             for e in plan.edges}
    return {"type": "stats", "elapsed_s": round(now - t0, 3), "nodes": nodes, "edges": edges}


def _signature(rec: dict) -> tuple:
    nodes = tuple((n, *(s.get(f) for f in _NODE_FIELDS), repr(s.get("warnings")))  # dicts: compared as text
                  for n, s in sorted(rec["nodes"].items()))
    edges = tuple((e, *(s.get(f) for f in _EDGE_FIELDS)) for e, s in sorted(rec["edges"].items()))
    return nodes, edges


class StatsGate:
    """Admits a stats record when it differs from the last one admitted, or when `idle_period_s`
    went by on `clock` since then."""

    def __init__(self, idle_period_s: float = IDLE_PERIOD_S, clock: Callable[[], float] = time.monotonic):
        self.idle_period_s = idle_period_s
        self.clock = clock
        self._last: tuple | None = None
        self._last_t = float("-inf")

    def admit(self, rec: dict) -> bool:
        sig, now = _signature(rec), self.clock()
        if sig == self._last and now - self._last_t < self.idle_period_s:
            return False
        self._last, self._last_t = sig, now
        return True
