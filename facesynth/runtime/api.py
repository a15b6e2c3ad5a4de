"""Run a graph file: the one entry point used by the CLI, tests and benchmarks."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from facesynth.graph.checks import LoadedGraph, load_graph
from facesynth.runtime.backends import LocalBackend, RayBackend
from facesynth.runtime.supervisor import RunResult, Supervisor


def make_backend(backend: str = "ray", address: str | None = None) -> Any:
    if backend == "local":
        return LocalBackend()
    return RayBackend(address)


def new_supervisor(loaded: LoadedGraph, be: Any, *, restart: bool = False,
                   on_record: Callable[[dict], None] | None = None) -> Supervisor:
    """A supervisor for `loaded` on backend `be`; on Ray its records also go to the metrics actor."""
    metrics = None
    if be.name == "ray":
        from facesynth.runtime.runlog import metrics_actor

        metrics = metrics_actor(be.ray)
    return Supervisor(loaded, be, restart=restart, on_record=on_record, metrics=metrics)


def run_graph(graph: str | LoadedGraph, *, overrides: list[str] | None = None, backend: str = "ray",
              address: str | None = None, restart: bool = False,
              on_record: Callable[[dict], None] | None = None, shutdown: bool = True) -> RunResult:
    """Check and run a graph to completion; raise GraphError / RunError on failure."""
    loaded = graph if isinstance(graph, LoadedGraph) else load_graph(graph, overrides)
    be = make_backend(backend, address)
    try:
        return asyncio.run(new_supervisor(loaded, be, restart=restart, on_record=on_record).run())
    finally:
        if shutdown:
            be.shutdown()
