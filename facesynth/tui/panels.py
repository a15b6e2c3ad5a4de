"""Text panels: run status, per-stage progress with ETA, training, live loop, errors.

Each is a Static that renders from a RunState; bars and curves are drawn as text so the same
state always gives the same screen (snapshot tests) and no clock is read here.
"""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from facesynth.tui.state import RunState, TrainView, fmt_duration, sparkline
from facesynth.tui.tables import STATE_STYLE, items_text

STATUS_STYLE = {"waiting": "dim", "running": "bold cyan", "ok": "bold green", "failed": "bold red",
                "interrupted": "bold yellow"}


def bar(fraction: float | None, width: int) -> Text:
    """A progress bar; unknown totals show an empty dotted track."""
    if fraction is None:
        return Text("┄" * width, style="dim")
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    t = Text("━" * filled, style="green" if fraction >= 1 else "cyan")
    t.append("━" * (width - filled), style="grey23")
    return t


def trim(text: str, width: int, left: bool = False) -> str:
    """Shorten to `width` with an ellipsis (at the start for paths, whose end matters)."""
    if len(text) <= width:
        return text
    return "…" + text[-max(1, width - 1):] if left else text[: max(1, width - 1)] + "…"


class StatePanel(Widget):
    """Renders from the last RunState at its current width (so a resize redraws correctly)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.state: RunState | None = None

    def refresh_from(self, state: RunState) -> None:
        self.state = state
        self.display = self.shown(state)
        self.refresh(layout=True)

    def shown(self, state: RunState) -> bool:
        return True

    def render(self) -> Text:
        if self.state is None:
            return Text("")
        return self.build(self.state, max(20, self.content_region.width or self.size.width or 76))

    def build(self, state: RunState, width: int) -> Text:
        raise NotImplementedError


class StatusBar(Widget):
    """One line: graph, run id, status, elapsed, nodes done, where records come from."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.text = Text("")

    def render(self) -> Text:
        return self.text

    def refresh_from(self, state: RunState, source: str, paused: bool, bad_lines: int = 0) -> None:
        done, total = state.overall()
        t = Text()
        t.append(f" {state.graph or '(no run yet)'} ", style="bold reverse")
        t.append(" ")
        t.append(state.status, style=STATUS_STYLE.get(state.status, ""))
        if paused:
            t.append("  PAUSED", style="bold black on yellow")
        t.append(f"  {fmt_duration(state.elapsed_s)}  {done}/{total} nodes done")
        eta = state.eta_s()
        if eta is not None:
            t.append(f"  ETA {fmt_duration(eta)}", style="bold")
        if state.errors:
            t.append(f"  {len(state.errors)} error{'s' if len(state.errors) != 1 else ''}", style="bold red")
        if bad_lines:
            t.append(f"  {bad_lines} bad line{'s' if bad_lines != 1 else ''}", style="yellow")
        t.append(f"  run {state.run_id}  {source}", style="dim")
        t.no_wrap, t.overflow = True, "ellipsis"
        self.text = t
        self.refresh()


class StageProgress(StatePanel):
    """One line per stage: name, bar, percent, items, ETA (from the recent rate)."""

    def build(self, state: RunState, width: int) -> Text:
        name_w = max([len(n) for n in state.nodes] + [6])
        bar_w = max(6, width - name_w - 29)
        lines = []
        tv = state.train
        for nid, n in state.nodes.items():
            frac = n.fraction()
            items = items_text(n) if n.expected() else f"{n.items}/?"
            if tv is not None and tv.node == nid:
                items = f"ep {tv.epoch}/{tv.epochs}"
                if n.state not in ("done", "failed") and tv.fraction is not None:
                    frac = tv.fraction  # a training node has one item; its epochs are the progress
            t = Text(nid.ljust(name_w) + " ", style=STATE_STYLE.get(n.state, ""))
            t.append_text(bar(frac, bar_w))
            pct = "  ?%" if frac is None else f"{frac * 100:3.0f}%"
            eta = "done" if n.state == "done" else ("FAILED" if n.state == "failed" else
                                                     f"ETA {fmt_duration(state.node_eta_s(nid))}")
            t.append(f" {pct} {items:>9} {eta:>10}"[: width - name_w - bar_w - 1])
            lines.append(t)
        return Text("\n").join(lines) if lines else Text("waiting for the run to start…", style="dim")


def loss_lines(tv: TrainView, width: int) -> list[Text]:
    name_w = max([len(k) for k in tv.losses] + [4])
    spark_w = max(8, min(40, width - name_w - 11))
    out = []
    for name, values in tv.losses.items():
        t = Text(f"{name.ljust(name_w)} {values[-1] if values else 0:9.4f} ")
        t.append(sparkline(values, spark_w), style="magenta")
        out.append(t)
    return out


class TrainingPanel(StatePanel):
    """Epoch/step progress, loss curves, last eval metrics, latest preview and checkpoint."""

    def shown(self, state: RunState) -> bool:
        return state.train is not None

    def build(self, state: RunState, width: int) -> Text:
        tv = state.train
        if tv is None:
            return Text("")
        ep = Text(f"epoch {tv.epoch}/{tv.epochs} ".ljust(12))
        st = Text(f"step {tv.step}/{tv.steps} ".ljust(12))
        two_lines = width < 70
        bw = max(6, (width - 12 if two_lines else width // 2 - 14))
        ep.append_text(bar(tv.fraction, bw))
        st.append_text(bar(tv.step / tv.steps if tv.steps else None, bw))
        lines = [ep, st] if two_lines else [ep.append("  ").append_text(st)]
        lines += loss_lines(tv, width)
        if tv.eval:
            ev = Text(f"eval (epoch {tv.eval_epoch}): ", style="bold")
            ev.append("  ".join(f"{k} {v:.4g}" for k, v in tv.eval.items()))
            lines.append(ev)
        if tv.preview:
            lines.append(Text("preview ", style="bold").append(trim(tv.preview, width - 8, left=True)))
        if tv.checkpoint:
            lines.append(Text("checkpoint ", style="bold").append(trim(tv.checkpoint, width - 11, left=True)))
        return Text("\n").join(lines)


class LivePanel(StatePanel):
    """Live graphs: frames per second, end-to-end latency percentiles, generator time, drops."""

    def shown(self, state: RunState) -> bool:
        return state.live is not None

    def build(self, state: RunState, width: int) -> Text:
        lv = state.live
        if lv is None:
            return Text("")
        t = Text(f"fps {lv.fps:6.1f} ", style="bold")
        t.append(sparkline(lv.fps_history, max(8, min(30, width - 12))), style="green")
        lat = lv.latency_ms
        if lat:
            t.append("\nlatency ms  " + "  ".join(f"{k} {v:.1f}" for k, v in lat.items()))
        t.append("\n" + (f"generator {lv.generator_ms:.1f} ms   " if lv.generator_ms is not None else ""))
        t.append(f"drops {lv.drops}", style="bold yellow" if lv.drops else "")
        return t


class ErrorPanel(StatePanel):
    """The failing node's error and traceback (the fatal one when there is one, else the latest)."""

    max_lines = 14

    def shown(self, state: RunState) -> bool:
        return bool(state.errors) or state.status == "failed"

    def build(self, state: RunState, width: int) -> Text:
        err = state.failing_error()
        if err is None:
            return Text(f"run failed: {state.end_error or 'no error record'}", style="bold red")
        what = "fatal" if err.get("fatal") else f"restart {err.get('restart', '?')}"
        t = Text(f"{err.get('node', '?')} on {err.get('chunk', '?')} ({what}): ", style="bold red")
        t.append(str(err.get("error", "")))
        others = len(state.errors) - 1
        if others > 0:
            t.append(f"  (+{others} more)", style="dim")
        tb = str(err.get("traceback") or "").rstrip().splitlines()
        if tb:
            t.append("\n" + "\n".join(tb[-self.max_lines:]))
        return t
