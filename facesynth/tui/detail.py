"""The node detail screen (enter on a node row): everything known about one node."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from facesynth.tui.state import RunState, fmt_duration, sparkline
from facesynth.tui.tables import edge_label, fmt_rate, state_text


def node_detail_text(state: RunState, nid: str) -> Text:
    n = state.nodes.get(nid)
    if n is None:
        return Text(f"node {nid!r} is not in this run", style="bold red")
    t = Text(f"{nid}", style="bold")
    t.append(f"  {n.kind}  ×{n.replicas}  ")
    t.append_text(state_text(n.state))
    t.append(f"\nitems {n.items}" + (f"/{n.total}" if n.total else "") + f"   skipped {n.skipped}"
             f"   rate {fmt_rate(n.recent_rate())}/s (avg {fmt_rate(n.rate)}/s)   ETA {fmt_duration(state.node_eta_s(nid))}")
    t.append(f"\nbusy {n.busy_pct:.0f}% ({n.busy_s:.1f}s)   errors {n.errors}   restarts {n.restarts}")
    t.append("\nrate  ").append(sparkline(n.rates, 40), style="green")
    for port, srcs in n.inputs.items():
        t.append(f"\nin  {port} <- {', '.join(srcs) or '-'}")
    for e in state.edges.values():
        if e.src.split("/")[0] == nid or e.dst.split("/")[0] == nid:
            t.append(f"\nqueue {edge_label(e, ports=True)}: {e.depth}/{e.bound} (max {e.max_depth}) blocked "
                     f"{e.blocked_s:.2f}s drops {e.drops} sent {e.sent}")
    if n.events:
        t.append("\nrecent events", style="bold")
        for ev in list(n.events)[-6:]:
            data = {k: v for k, v in ev.items() if k not in ("type", "t", "name", "node")}
            t.append(f"\n  {ev.get('name', '?')} {data}"[:300])
    if n.last_error:
        err = n.last_error
        t.append(f"\nlast error on {err.get('chunk', '?')}: {err.get('error', '')}", style="bold red")
        tb = str(err.get("traceback") or "").rstrip()
        if tb:
            t.append("\n" + tb)
    return t


class NodeScreen(ModalScreen):
    """Details of one node; updated live while open. Escape goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("q", "app.quit", "quit"),
                Binding("p", "app.toggle_pause", "pause")]
    DEFAULT_CSS = """
    NodeScreen { align: center middle; }
    NodeScreen > VerticalScroll { width: 96%; height: 90%; border: round $accent; background: $surface;
                                  padding: 0 1; }
    """

    def __init__(self, node_id: str, state: RunState):
        super().__init__()
        self.node_id, self.state = node_id, state

    def compose(self) -> ComposeResult:
        with VerticalScroll() as vs:
            vs.border_title = f"node {self.node_id}"
            vs.border_subtitle = "esc back"
            yield Static(node_detail_text(self.state, self.node_id), id="detail")

    def refresh_from(self, state: RunState) -> None:
        self.state = state
        self.query_one("#detail", Static).update(node_detail_text(state, self.node_id))

