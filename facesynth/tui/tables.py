"""The node and edge tables: one row per node / queue, updated in place as stats arrive."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from facesynth.tui.state import EdgeView, NodeView, RunState, fmt_duration, sparkline

STATE_STYLE = {"waiting": "dim", "running": "bold cyan", "finishing": "bold blue", "done": "bold green",
               "failed": "bold red"}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "yellow"))


def items_text(n: NodeView) -> str:
    """`12/35`, `12/~35` while the total is an estimate from upstream, `12` when unknown."""
    if n.total:
        return f"{n.items}/{n.total}"
    return f"{n.items}/~{n.estimate}" if n.estimate else str(n.items)


def fmt_rate(rate: float) -> str:
    if rate >= 100:
        return f"{rate:.0f}"
    return f"{rate:.1f}" if rate >= 1 or rate == 0 else f"{rate:.2f}"


def edge_label(e: EdgeView, ports: bool = False) -> str:
    """`camera→landmarks`; with ports `camera.rgbd→landmarks.rgbd` (two edges join the same nodes)."""
    src = e.src or e.id.split("->")[0]
    dst = e.dst or (e.id.split("->")[1] if "->" in e.id else "")
    s_node, _, s_port = src.partition("/")
    d_node, _, d_port = dst.partition("/")
    if ports and (s_port or d_port):
        return f"{s_node}.{s_port}→{d_node}.{d_port}"
    return f"{s_node}→{d_node}"


def edge_labels(edges: dict[str, EdgeView]) -> dict[str, str]:
    short = {eid: edge_label(e) for eid, e in edges.items()}
    seen = list(short.values())
    return {eid: (lab if seen.count(lab) == 1 else edge_label(edges[eid], ports=True)) for eid, lab in short.items()}


class NodeTable(DataTable):
    """Nodes: state, replicas, items done/total, recent rate + sparkline, busy %, errors, restarts."""

    COLUMNS = (("node", "node"), ("state", "state"), ("rep", "rep"), ("items", "items"), ("rate", "rate/s"),
               ("trend", "trend"), ("busy", "busy%"), ("err", "err"), ("rst", "rst"))

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._version = -1

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def _cells(self, n: NodeView) -> list:
        err = Text(str(n.errors), style="bold red" if n.errors else "")
        rst = Text(str(n.restarts), style="yellow" if n.restarts else "")
        return [n.id, state_text(n.state), str(n.replicas), items_text(n), fmt_rate(n.recent_rate()),
                Text(sparkline(n.rates, 10), style="green"), f"{n.busy_pct:.0f}", err, rst]

    def refresh_from(self, state: RunState) -> None:
        if state.version != self._version or self.row_count != len(state.nodes):
            selected = self.selected_node()
            self.clear()
            for nid, n in state.nodes.items():
                self.add_row(*self._cells(n), key=nid)
            self._version = state.version
            if selected in state.nodes:
                self.move_cursor(row=list(state.nodes).index(selected))
            return
        for nid, n in state.nodes.items():
            for (key, _), value in zip(self.COLUMNS, self._cells(n)):
                self.update_cell(nid, key, value, update_width=True)

    def selected_node(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # noqa: BLE001 - no valid cursor yet
            return None
        return row_key.value


class EdgeTable(DataTable):
    """Queues: depth against the bound (yellow when full), time producers spent blocked, drops.

    Four narrow columns so the table fits beside the node table at 120 columns; items sent and
    the deepest the queue got are in the node detail screen."""

    COLUMNS = (("edge", "queue"), ("depth", "depth"), ("blocked", "blocked"), ("drops", "drops"))

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="none", show_cursor=False, **kw)
        self._version = -1

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def _cells(self, e: EdgeView, label: str) -> list:
        full = e.bound > 0 and e.depth >= e.bound
        drops = Text(str(e.drops), style="bold yellow" if e.drops else "")
        blocked = fmt_duration(e.blocked_s) if e.blocked_s >= 10 else f"{e.blocked_s:.1f}s"
        return [label, Text(f"{e.depth}/{e.bound}", style="bold yellow" if full else ""), blocked, drops]

    def refresh_from(self, state: RunState) -> None:
        labels = edge_labels(state.edges)
        if state.version != self._version or self.row_count != len(state.edges):
            self.clear()
            for eid, e in state.edges.items():
                self.add_row(*self._cells(e, labels[eid]), key=eid)
            self._version = state.version
            return
        for eid, e in state.edges.items():
            for (key, _), value in zip(self.COLUMNS, self._cells(e, labels[eid])):
                self.update_cell(eid, key, value, update_width=True)
