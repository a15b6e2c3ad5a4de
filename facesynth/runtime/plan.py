"""Turn a checked graph spec into the runtime's plan: replicas, edges, inboxes, contexts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facesynth.graph.spec import GraphSpec, NodeSpec, split_ref
from facesynth.nodes import registry
from facesynth.nodes.base import Node
from facesynth.runtime.edges import Edge, NodeInbox


@dataclass
class NodeStats:
    state: str = "waiting"
    replicas: int = 1
    items: int = 0
    total: int | None = None
    busy_s: float = 0.0
    errors: int = 0
    restarts: int = 0
    skipped: int = 0
    warnings: dict = field(default_factory=dict)  # event name -> {tally: count}: events sent with `tally=`
    calls: int = 0  # work calls to replicas (a call carries one item or a batch)
    started: float | None = None
    ended: float | None = None


@dataclass
class PlannedNode:
    spec: NodeSpec
    cls: type[Node]
    replicas: int
    max_restarts: int
    inbox: NodeInbox | None = None
    handles: list[Any] = field(default_factory=list)
    done: dict[str, list[dict]] = field(default_factory=dict)
    stats: NodeStats = field(default_factory=NodeStats)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def recorded(self) -> bool:
        """Whether finished work units of this node go to the store's progress log."""
        return not self.cls.live


@dataclass
class Plan:
    nodes: dict[str, PlannedNode]
    edges: list[Edge]
    consumers: dict[tuple[str, str], list[Edge]]
    inbox_of: dict[str, NodeInbox]


def build_plan(spec: GraphSpec, cpus: int) -> Plan:
    nodes: dict[str, PlannedNode] = {}
    for ns in spec.nodes:
        cls = registry.get(ns.kind)
        assert cls is not None, ns.kind  # checked by load_graph
        n = cpus if ns.replicas == "auto" else int(ns.replicas)
        if cls.max_replicas is not None:
            n = min(n, cls.max_replicas)
        restarts = ns.max_restarts if ns.max_restarts is not None else spec.defaults.max_restarts
        nodes[ns.id] = PlannedNode(ns, cls, max(1, n), restarts)
        nodes[ns.id].stats.replicas = nodes[ns.id].replicas
    edges: list[Edge] = []
    consumers: dict[tuple[str, str], list[Edge]] = {}
    inbox_of: dict[str, NodeInbox] = {}
    for ns in spec.nodes:
        mine: list[Edge] = []
        for port in ns.inputs:
            for e in ns.edges(port):
                src = split_ref(e.from_)
                assert src is not None
                edge = Edge(id=f"{e.from_}->{ns.id}/{port}", src=e.from_, dst=f"{ns.id}/{port}",
                            bound=e.queue or spec.defaults.queue, policy=e.policy or spec.defaults.policy)
                mine.append(edge)
                consumers.setdefault(src, []).append(edge)
        edges.extend(mine)
        if mine:
            inbox_of[ns.id] = NodeInbox(mine)
            nodes[ns.id].inbox = inbox_of[ns.id]
    return Plan(nodes, edges, consumers, inbox_of)
