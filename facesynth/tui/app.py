"""The dashboard app: polls a record source, folds records into RunState, redraws the widgets.

Entry points:
- `make_app(source, ...)` -> `Dashboard` (tests drive it with `run_test()` / snap_compare).
- `run_dashboard_for_run(runlog_path, until=None, linger_s=1.5)` follows a run log that another
  thread or process is writing, and returns when the run ends (its `run_end` record, or `until`
  says so) or the user presses q.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer

from facesynth.tui.detail import NodeScreen
from facesynth.tui.panels import ErrorPanel, LivePanel, StageProgress, StatusBar, TrainingPanel
from facesynth.tui.sources import TailSource
from facesynth.tui.state import RunState
from facesynth.tui.tables import EdgeTable, NodeTable

WIDE = 116  # columns from which the panels sit side by side (the node table takes 76)

Until = Callable[[], bool] | threading.Event | None


def _until_fn(until: Until) -> Callable[[], bool] | None:
    if until is None:
        return None
    if isinstance(until, threading.Event):
        return until.is_set
    return until


class Dashboard(App):
    """Live (or replayed) view of one graph run."""

    TITLE = "facesynth dashboard"
    ENABLE_COMMAND_PALETTE = False  # the footer keeps to the dashboard's own keys
    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; background: $boost; }
    #body { height: 1fr; }
    #body.-wide { layout: horizontal; }
    #left, #right { height: auto; }
    #body.-wide #left { width: 76; }
    #body.-wide #right { width: 1fr; }
    .panel { height: auto; border: round $primary-darken-1; padding: 0 1; }
    NodeTable { height: auto; max-height: 18; border: round $primary-darken-1; }
    EdgeTable { height: auto; max-height: 14; border: round $primary-darken-1; overflow-x: hidden; }
    ErrorPanel { border: round $error; max-height: 20; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("p", "toggle_pause", "pause"),
                Binding("enter", "open_node", "node detail"),
                Binding("ctrl+c", "interrupt", "stop", show=False, priority=True)]

    def __init__(self, source: Any, *, poll_s: float = 0.25, exit_on_end: bool = False,
                 linger_s: float = 1.5, until: Until = None):
        super().__init__()
        self.source = source
        self.poll_s = poll_s
        self.exit_on_end = exit_on_end
        self.linger_s = linger_s
        self.until = _until_fn(until)
        self.state = RunState()
        self.paused = False
        self.poll_error: str | None = None
        self._exiting = False
        self._interrupt = False

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with VerticalScroll(id="body"):
            with Vertical(id="left"):
                yield NodeTable(id="nodes")
                yield ErrorPanel(id="errors", classes="panel")
                yield StageProgress(id="progress", classes="panel")
            with Vertical(id="right"):
                yield TrainingPanel(id="training", classes="panel")
                yield LivePanel(id="live", classes="panel")
                yield EdgeTable(id="edges")
        yield Footer()

    def on_mount(self) -> None:
        titles = {"nodes": "nodes", "errors": "error", "progress": "progress", "training": "training",
                  "live": "live", "edges": "queues"}
        for wid, title in titles.items():
            self.query_one(f"#{wid}").border_title = title
        self._set_wide(self.size.width)
        self.query_one(NodeTable).focus()  # arrows move through the nodes straight away
        self.poll_source()
        self.set_interval(self.poll_s, self.poll_source)

    def on_resize(self, event: Any) -> None:
        self._set_wide(event.size.width)

    def _set_wide(self, width: int) -> None:
        self.query_one("#body").set_class(width >= WIDE, "-wide")

    # ---- updates -------------------------------------------------------------------------
    def poll_source(self) -> None:
        """Take new records from the source and redraw; never raises (the error is shown)."""
        if self._interrupt:
            self.exit("interrupt")
            return
        if self.paused or self._exiting:
            return
        try:
            self._apply(self._take())
            self._check_end()
        except NoMatches:
            pass  # a tick that lands while the app is shutting down has nothing left to draw

    def _take(self) -> list[dict]:
        try:
            records = self.source.poll()
            self.poll_error = None
        except Exception as exc:  # noqa: BLE001 - a broken source is shown, not fatal
            records, self.poll_error = [], f"{type(exc).__name__}: {exc}"
        return records

    def _apply(self, records: list[dict]) -> None:
        if records or self.poll_error or not self.state.records:
            self.state.apply_all(records)
            self.refresh_views()

    def _source_label(self) -> str:
        label = self.source.describe() if hasattr(self.source, "describe") else ""
        return f"{label} ({self.poll_error})" if self.poll_error else label

    def _refresh_status(self) -> None:
        bad = self.state.bad_lines + int(getattr(self.source, "bad_lines", 0) or 0)
        self.query_one(StatusBar).refresh_from(self.state, self._source_label(), self.paused, bad)

    def refresh_views(self) -> None:
        st = self.state
        self._refresh_status()
        self.query_one(NodeTable).refresh_from(st)
        self.query_one(EdgeTable).refresh_from(st)
        self.query_one(EdgeTable).display = bool(st.edges)
        self.query_one(StageProgress).refresh_from(st)
        self.query_one(TrainingPanel).refresh_from(st)
        self.query_one(LivePanel).refresh_from(st)
        self.query_one(ErrorPanel).refresh_from(st)
        if isinstance(self.screen, NodeScreen):
            self.screen.refresh_from(st)

    def _check_end(self) -> None:
        if not self.exit_on_end or self._exiting:
            return
        ended = self.state.ended or bool(getattr(self.source, "finished", False))
        if not ended and self.until is not None and self.until():
            self._apply(self._take())  # the run stopped: show what it wrote last
            self.refresh_views()
            ended = True
        if ended:
            self._exiting = True
            self.set_timer(max(0.01, self.linger_s), lambda: self.exit(self.state.status))

    # ---- actions -------------------------------------------------------------------------
    def request_interrupt(self) -> None:
        """Safe from a signal handler: the next tick leaves as Ctrl-C would."""
        self._interrupt = True

    def action_interrupt(self) -> None:
        """Ctrl-C: leave, telling whoever runs the graph to stop it (see launch.run_with_dashboard)."""
        self.exit("interrupt")

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._refresh_status()
        if not self.paused:
            self.poll_source()

    def action_open_node(self) -> None:
        nid = self.query_one(NodeTable).selected_node()
        if nid is not None and not isinstance(self.screen, NodeScreen):
            self.push_screen(NodeScreen(nid, self.state))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, NodeTable) and event.row_key.value is not None:
            if not isinstance(self.screen, NodeScreen):
                self.push_screen(NodeScreen(str(event.row_key.value), self.state))


def make_app(source: Any, **kw: Any) -> Dashboard:
    return Dashboard(source, **kw)


def run_dashboard_for_run(runlog_path: str | Path, until: Until = None, *, linger_s: float = 1.5,
                          poll_s: float = 0.25, headless: bool = False) -> RunState:
    """Show the dashboard for a run log being written by a run in another thread or process.

    Returns (with the final RunState) when the log's `run_end` record has been shown for
    `linger_s` seconds, when `until` (a callable or threading.Event) becomes true - pass the
    run's "finished" event so a run that dies before writing run_end still ends the view - or
    when the user presses q. The file need not exist yet. Must be called from the main thread;
    `headless` draws nothing (tests).
    """
    app = Dashboard(TailSource(runlog_path), poll_s=poll_s, exit_on_end=True, linger_s=linger_s, until=until)
    app.run(headless=headless)
    return app.state
