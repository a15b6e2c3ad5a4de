"""How a run ends is recorded truthfully, and every replica is closed, whatever ended it."""
from __future__ import annotations

import asyncio
import json

import pytest

from facesynth.errors import RunError
from facesynth.graph.checks import load_graph
from facesynth.runtime.backends import LocalBackend
from facesynth.runtime.supervisor import Supervisor


class BreakingTransport(LocalBackend):
    """The in-process backend whose call carrying chunk 16 breaks with `fault` (a fault of the
    transport, not of the node: the host never sees it), counting each replica's close calls."""

    def __init__(self, fault: BaseException):
        self.fault = fault
        self.hosts: list = []
        self.closes: dict[int, int] = {}

    def create(self, *args, **kwargs):
        host = super().create(*args, **kwargs)
        self.hosts.append(host)
        return host

    async def call(self, host, method, *args):
        if method == "close":
            self.closes[id(host)] = self.closes.get(id(host), 0) + 1
        if method == "process_batch" and any(getattr(item, "start", None) == 16 for _port, item in args[0]):
            raise self.fault
        return await super().call(host, method, *args)


def run_end(tmp_path) -> dict:
    log = next((tmp_path / "store.zarr.runs").glob("*.jsonl"))
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert records[-1]["type"] == "run_end"
    return records[-1]


def test_an_unexpected_exception_ends_the_run_failed_with_node_chunk_cause_and_closes_replicas(tmp_path, make_graph):
    backend = BreakingTransport(RuntimeError("transport broke"))
    sup = Supervisor(load_graph(make_graph(tmp_path, frames=48)), backend)
    with pytest.raises(RunError) as ei:
        asyncio.run(sup.run())
    assert ei.value.node == "blur" and ei.value.cause == "RuntimeError: transport broke"
    end = run_end(tmp_path)
    assert (end["status"], end["node"], end["cause"]) == ("failed", "blur", "RuntimeError: transport broke")
    assert "chunk" in end and "node 'blur' failed" in end["error"]
    assert len(backend.hosts) == 3 and all(backend.closes.get(id(h)) == 1 for h in backend.hosts)


def test_an_interrupt_inside_the_run_ends_it_interrupted_and_closes_replicas(tmp_path, make_graph):
    backend = BreakingTransport(KeyboardInterrupt())
    sup = Supervisor(load_graph(make_graph(tmp_path, frames=48)), backend)
    with pytest.raises((KeyboardInterrupt, asyncio.CancelledError)):
        asyncio.run(sup.run())
    assert run_end(tmp_path)["status"] == "interrupted"
    assert len(backend.hosts) == 3 and all(backend.closes.get(id(h)) == 1 for h in backend.hosts)
