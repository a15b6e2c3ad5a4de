"""Runs a planned graph: dispatches items to replicas, retries, records progress, emits stats.

The supervisor lives in the driver process. Edges are bounded inboxes here; a replica (Ray
actor or in-process host) holds a bounded number of items (runtime/feed.py: batched calls,
two in flight), so a slow consumer blocks its producer (backpressure). A failed item is
retried on a restarted replica up to `max_restarts` times (runtime/calls.py), then the run
fails naming node, chunk and cause. Finished work units are appended to the
store's progress log, so a rerun skips them.

Every way a run ends is written as its `run_end`: ok; failed (with node, chunk and cause,
also for an unexpected exception of the runtime itself); interrupted (Ctrl-C, SIGTERM, a
cancelled task). Every replica is closed on every way out.
"""
from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from facesynth.errors import RunError
from facesynth.graph.checks import LoadedGraph
from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.runtime.backends import WorkerLost
from facesynth.runtime.calls import ReplicaCalls
from facesynth.runtime.feed import MAX_BATCH, ReplicaFeeder
from facesynth.runtime.plan import Plan, PlannedNode, build_plan
from facesynth.runtime.runlog import RunLog, run_log_dir
from facesynth.runtime.stats import STATS_PERIOD_S, StatsGate, stats_record
from facesynth.store.progress import Progress
from facesynth.store.run_store import open_run_store


def encode_outputs(outputs: list[tuple]) -> list[dict] | None:
    """Outputs as JSON for the progress log; None if some item cannot be recorded."""
    out = []
    for port, item, _key in outputs:
        if isinstance(item, ChunkRef):
            out.append({"port": port, "chunk": item.to_dict()})
        elif item is None or isinstance(item, (str, int, float, bool, dict, list)):
            out.append({"port": port, "value": item})
        else:
            return None
    return out


def decode_outputs(recorded: list[dict]) -> list[tuple]:
    return [(r["port"], ChunkRef.from_dict(r["chunk"]) if "chunk" in r else r.get("value"), None) for r in recorded]


@dataclass
class RunResult:
    status: str
    run_log: Path
    store: str | None
    stats: dict[str, Any]
    sink: dict[str, list]  # node id -> items it emitted on ports nobody reads (finals)


class Supervisor:
    def __init__(self, graph: LoadedGraph, backend: Any, restart: bool = False,
                 on_record: Callable[[dict], None] | None = None, metrics: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.graph, self.spec, self.backend = graph, graph.spec, backend
        self.restart = restart
        self.on_record = on_record
        self.metrics = metrics
        self.store_path = self.spec.store_path()
        self.progress = Progress(self.store_path) if self.store_path else None
        self.plan: Plan = build_plan(self.spec, backend.cpus())
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        self.log = RunLog(run_log_dir(self.store_path), self.run_id)
        self.sink: dict[str, list] = {}
        self._emitted: dict[str, set[str]] = {}
        self._t0 = time.time()
        self._draining: dict[tuple[str, int], asyncio.Task] = {}
        self.calls = ReplicaCalls(backend, self._record, on_restarted=self._bring_up_to_date)
        self._stats_gate = StatsGate(clock=clock)
        self._closed: set[int] = set()  # id() of the replicas already closed

    # ---- records --------------------------------------------------------------------
    def _record(self, rec: dict) -> None:
        rec = self.log.write(rec)
        if self.metrics is not None:
            self.metrics.append.remote([rec])
        if self.on_record is not None:
            self.on_record(rec)

    def _emit_stats(self, final: bool = False) -> dict:
        """A stats record for the screen; the log and the metrics actor keep it only when it says
        something new, or one per idle period (runtime/stats.py), and always the final one."""
        rec = stats_record(self.plan, self._t0)
        if final or self._stats_gate.admit(rec):
            self._record(rec)
        elif self.on_record is not None:
            rec["t"] = time.time()
            self.on_record(rec)
        return rec

    # ---- set-up ---------------------------------------------------------------------
    def _prepare_store(self) -> None:
        if not self.store_path:
            return
        # checks the path, takes the store's lock (one run per store), empties it on --restart
        self._store_lock = open_run_store(self.store_path, self.run_id, self.spec.store.chunk_frames, self.restart)

    def _start_replicas(self) -> None:
        cf = self.spec.store.chunk_frames if self.spec.store else 8
        for pn in self.plan.nodes.values():
            if self.progress is not None and pn.recorded:
                pn.done = self.progress.load(pn.id)
            try:
                self._create_replicas(pn, cf)
            except Exception as exc:  # e.g. a resource Ray cannot provide
                raise RunError(pn.id, "start", f"{type(exc).__name__}: {exc}", traceback.format_exc()) from exc

    def _create_replicas(self, pn: PlannedNode, cf: int) -> None:
        res = pn.spec.resources
        for r in range(pn.replicas):
            ctx = NodeContext(node_id=pn.id, kind=pn.spec.kind, replica=r, replicas=pn.replicas,
                              store_path=self.store_path, chunk_frames=cf, run_dir=str(self.log.path.parent),
                              graph_name=self.spec.name, restart=self.restart, done=pn.done)
            pn.handles.append(self.backend.create(
                pn.spec.kind, pn.spec.params, ctx, res.cpus if "cpus" in res.model_fields_set else None,
                res.gpus, pn.max_restarts, spread=pn.replicas > 1, module=pn.cls.__module__))

    async def _bring_up_to_date(self, pn: PlannedNode, handle: Any) -> None:
        """A restarted replica learns what this run already finished (Ray rebuilds a dead actor
        from its start-up arguments): a source then skips chunks it emitted before dying. Sent
        to every restarted replica: until then it refuses work (runtime/host.py)."""
        await self.calls.send(handle, "set_progress", pn.done)

    async def _route(self, pn: PlannedNode, outputs: list[tuple]) -> None:
        for port, item, _key in outputs:
            edges = self.plan.consumers.get((pn.id, port), [])
            if not edges and not pn.cls.live:  # live outputs nobody reads would pile up here
                self.sink.setdefault(pn.id, []).append(item)
            for edge in edges:
                await self.plan.inbox_of[edge.dst_node].put(edge, item)

    def _mark(self, pn: PlannedNode, key: str | None, outputs: list[tuple]) -> None:
        if key is None or self.progress is None or not pn.recorded or key in pn.done:
            return
        encoded = encode_outputs(outputs)
        if encoded is not None:
            self.progress.mark(pn.id, key, encoded)
            pn.done[key] = encoded

    # ---- workers ----------------------------------------------------------------------
    async def _source_worker(self, pn: PlannedNode, handle: Any) -> None:
        emitted = self._emitted.setdefault(pn.id, set())
        while True:
            t0 = time.perf_counter()
            pn.stats.calls += 1
            res = await self.calls.call(pn, handle, "next_items", MAX_BATCH, chunk="next")
            if res.get("end"):
                return
            pn.stats.busy_s += time.perf_counter() - t0
            for out in res["outputs"]:
                port, item, key = out
                key = key or (item.key if isinstance(item, ChunkRef) else None)
                if key is not None and key in emitted:
                    continue  # re-yielded after a restart
                if key is not None:
                    emitted.add(key)
                pn.stats.items += 1
                self._mark(pn, key, [out])
                await self._route(pn, [out])

    async def _consumer_worker(self, pn: PlannedNode, handle: Any) -> None:
        async def done(key: str | None, outputs: list) -> None:
            pn.stats.items += 1
            self._mark(pn, key, outputs)
            await self._route(pn, outputs)

        async def skip(key: str) -> None:
            pn.stats.skipped += 1
            pn.stats.items += 1
            await self._route(pn, decode_outputs(pn.done[key]))

        await ReplicaFeeder(pn, handle, self.calls, done, skip).run()

    async def _run_node(self, pn: PlannedNode) -> None:
        pn.stats.state, pn.stats.started = "running", time.time()
        worker = self._source_worker if pn.cls.is_source() else self._consumer_worker
        await asyncio.gather(*(worker(pn, h) for h in pn.handles))
        pn.stats.state = "finishing"
        for h in pn.handles:
            res = await self.calls.call(pn, h, "finish", chunk="finish")
            await self._route(pn, res["outputs"])
        for h in pn.handles:
            await self.calls.send(h, "close")  # a worker lost now has nothing left to release
            self._closed.add(id(h))
        for (src, _port), edges in self.plan.consumers.items():
            if src == pn.id:
                for edge in edges:
                    await self.plan.inbox_of[edge.dst_node].close(edge)
        pn.stats.state, pn.stats.ended = "done", time.time()
        for other in self.plan.nodes.values():  # downstream totals follow what really came
            if other.stats.total is None and other.inbox and all(
                    self.plan.nodes[e.src_node].stats.state == "done" for e in other.inbox.edges):
                other.stats.total = sum(e.stats.sent for e in other.inbox.edges)

    async def _stats_loop(self) -> None:
        while True:
            await self._drain_events()
            self._emit_stats()
            await asyncio.sleep(STATS_PERIOD_S)

    async def _drain_one(self, pn: PlannedNode, handle: Any) -> None:
        try:
            events = await self.backend.call(handle, "drain_events")
        except WorkerLost:
            return
        for ev in events:
            if ev.get("name") == "plan" and isinstance(ev.get("total"), int):
                pn.stats.total = ev["total"]
            if isinstance(ev.get("tally"), str):  # a warning counted in the run summary (e.g. capture.damaged)
                counts = pn.stats.warnings.setdefault(str(ev.get("name")), {})
                counts[ev["tally"]] = counts.get(ev["tally"], 0) + 1
            self._record(ev)

    async def _drain_events(self, wait: bool = False) -> None:
        """Collect node events; a replica still busy answering the last ask is skipped, never cancelled."""
        for pn in self.plan.nodes.values():
            for i, h in enumerate(pn.handles):
                task = self._draining.get((pn.id, i))
                if task is not None and not task.done():
                    if not wait:
                        continue
                    await task
                self._draining[(pn.id, i)] = asyncio.create_task(self._drain_one(pn, h))
        if wait:
            await asyncio.gather(*self._draining.values(), return_exceptions=True)

    async def _setup_live_nodes(self) -> None:
        """Live nodes open sockets and load models before the first item: fail fast, listen early."""
        live = [(pn, h) for pn in self.plan.nodes.values() if pn.cls.live for h in pn.handles]
        await asyncio.gather(*(self.calls.call(pn, h, "setup", chunk="setup") for pn, h in live))

    async def _close_all(self) -> None:
        """On every way out: each replica not closed yet releases its sockets and files."""
        calls = [self.backend.call(h, "close") for pn in self.plan.nodes.values() for h in pn.handles
                 if id(h) not in self._closed]
        self._closed.update(id(h) for pn in self.plan.nodes.values() for h in pn.handles)
        try:
            await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=10)
        except asyncio.TimeoutError:
            pass

    # ---- the run ------------------------------------------------------------------------
    async def run(self) -> RunResult:
        try:
            self._prepare_store()
        except BaseException:  # refused (store path, lock): leave no empty run log to mislead the dashboard
            self.log.close()
            if self.log.path.exists() and self.log.path.stat().st_size == 0:
                self.log.path.unlink()
            raise
        try:
            return await self._run_locked()
        finally:  # every way out, exceptions and interrupts included, frees the store
            if getattr(self, "_store_lock", None) is not None:
                self._store_lock.release()

    async def _run_locked(self) -> RunResult:
        self._record({"type": "run_start", "run_id": self.run_id, "graph": self.spec.name, "file": self.graph.file,
                      "store": self.store_path, "backend": self.backend.name,
                      "nodes": [{"id": pn.id, "kind": pn.spec.kind, "replicas": pn.replicas,
                                 "inputs": {p: [e.from_ for e in pn.spec.edges(p)] for p in pn.spec.inputs}}
                                for pn in self.plan.nodes.values()],
                      "edges": [{"id": e.id, "src": e.src, "dst": e.dst, "queue": e.bound, "policy": e.policy}
                                for e in self.plan.edges]})
        stats_task = asyncio.create_task(self._stats_loop())
        status, error = "ok", None
        tasks: list[asyncio.Task] = []
        try:
            self._start_replicas()
            await self._setup_live_nodes()
            tasks = [asyncio.create_task(self._run_node(pn), name=pn.id) for pn in self.plan.nodes.values()]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise _as_run_error(t.get_name(), t.exception())
        except RunError as exc:
            status, error = "failed", exc
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
            status, error = "interrupted", exc
        except Exception as exc:  # a fault of the runtime itself, outside any node's work
            status, error = "failed", _as_run_error("-", exc)
        finally:
            if isinstance(error, RunError):
                for pn in self.plan.nodes.values():
                    if pn.id == error.node:
                        pn.stats.state = "failed"
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_all()
            stats_task.cancel()
            await asyncio.gather(stats_task, return_exceptions=True)
            try:
                await asyncio.wait_for(self._drain_events(wait=True), timeout=30)
            except asyncio.TimeoutError:
                pass  # a replica that cannot answer any more has nothing more to tell
            final = self._emit_stats(final=True)
            end: dict[str, Any] = {"type": "run_end", "status": status, "error": _describe(error),
                                   "elapsed_s": round(time.time() - self._t0, 3)}
            if isinstance(error, RunError):
                end.update(node=error.node, chunk=error.chunk, cause=error.cause)
            self._record(end)
            self.log.close()
        if isinstance(error, BaseException):
            raise error
        return RunResult(status, self.log.path, self.store_path, final, self.sink)


def _as_run_error(node: str, exc: BaseException) -> BaseException:
    """A node task's exception as the run's failure; an interruption stays what it is."""
    if isinstance(exc, RunError) or not isinstance(exc, Exception):
        return exc
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return RunError(node, "-", f"{type(exc).__name__}: {exc}", tb)


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
        return type(error).__name__
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code})"
    return str(error)
