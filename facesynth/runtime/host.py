"""Hosts one node replica: the same object runs inside a Ray actor or in-process.

The host never raises into the supervisor: each call returns {"ok": True, "outputs": [...]}
or {"ok": False, "error", "traceback"}, so both backends report failures the same way.
Events a node reports (ctx.report) are buffered here and drained by the supervisor.

The supervisor may send a replica its next item before the current one is done (that hides
the call's round trip); a lock runs the node's calls one at a time, in the order they came.
A batch source keeps producing while the supervisor routes what it already handed over.

An actor that Ray rebuilt after its worker died refuses work ("stale") until the supervisor
has told it the run's progress (set_progress): a call sent before the supervisor saw the death
would otherwise run on the new worker unaccounted for (a source re-rendering what it already
emitted, a death there charged to nobody).
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
import warnings
from typing import Any, Awaitable, Callable

from facesynth.nodes import registry
from facesynth.nodes.base import Node, NodeContext, Output
from facesynth.runtime.run_ahead import RunAhead

AHEAD_ITEMS = 8  # a batch source's items produced ahead of the supervisor's asking


def _pack(outputs: list[Output] | None) -> list[tuple[str, Any, str | None]]:
    return [(o.port, o.item, o.key) for o in (outputs or [])]


def _rebuilt_by_ray() -> bool:
    """True inside an actor that Ray restarted (rebuilt from its start-up arguments)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    if context.get_actor_id() is None:  # the driver: an in-process host
        return False
    with warnings.catch_warnings():  # the property reads Ray's own deprecated actor_id field
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(context.was_current_actor_reconstructed)


STALE = {"ok": False, "stale": True, "traceback": "",
         "error": "worker restarted: waiting to be told the run's progress"}


def _failure(exc: BaseException) -> dict:
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
            "retryable": bool(getattr(exc, "retryable", True))}


class NodeHost:
    """Owns one Node instance; (re)creates it on demand and forwards runtime calls."""

    def __init__(self, kind: str, params: dict, ctx: NodeContext, module: str | None = None):
        self.kind = kind
        self.module = module  # the node's module: import just that one in a worker
        self.params = params
        self.ctx = ctx
        self.ctx.reporter = self._collect
        self.node: Node | None = None
        self._gen = None
        self._ahead: RunAhead | None = None  # a batch source's items, produced ahead
        self._lock = asyncio.Lock()  # the node's calls run one at a time, first come first served
        self._events: list[dict] = []
        self._stale = _rebuilt_by_ray()  # refuse work until set_progress

    def _collect(self, name: str, data: dict) -> None:
        self._events.append({"type": "event", "t": time.time(), "name": name, **data})

    async def _ensure(self) -> Node:
        if self.node is None:
            cls = registry.load(self.kind, self.module)
            if cls is None:
                raise KeyError(f"unknown node kind '{self.kind}'")
            node = cls(cls.Params.model_validate(self.params), self.ctx)
            await node.setup()
            self.node = node
        return self.node

    async def ping(self) -> int:
        return os.getpid()

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None

    async def _locked(self, work: Callable[[Node], Awaitable[dict]]) -> dict:
        """Run `work(node)` behind the lock, the node set up first; a failure is returned."""
        async with self._lock:
            if self._stale:
                return dict(STALE)
            try:
                return await work(await self._ensure())
            except Exception as exc:
                return _failure(exc)

    async def setup(self) -> dict:
        """Set the node up now (live nodes open their sockets and load models at run start)."""
        async def nothing(node: Node) -> dict:
            return {"ok": True, "outputs": []}

        return await self._locked(nothing)

    async def set_progress(self, done: dict[str, list[dict]]) -> dict:
        """The run's current progress, sent after a restart: Ray rebuilds a dead actor from its
        start-up arguments, whose `done` is what was finished before this run began."""
        if done is not self.ctx.done:  # in-process, the supervisor's own dict is shared already
            self.ctx.done.clear()
            self.ctx.done.update(done)
        self._stale = False
        return {"ok": True, "outputs": []}

    async def restart(self) -> dict:
        """Drop the node instance (after a failure) and set up a fresh one."""
        async with self._lock:
            self._drop_ahead()
            old, self.node, self._gen = self.node, None, None
            if old is not None:
                try:
                    await old.close()
                except Exception:  # the old instance is broken anyway
                    pass
            try:
                await self._ensure()
                return {"ok": True, "outputs": []}
            except Exception as exc:
                return _failure(exc)

    async def process_batch(self, items: list[tuple[str, Any]]) -> dict:
        """(port, item) pairs in order, one or several per call; stops at the first that fails.
        "results" holds the outputs of each item that succeeded, in order, also on failure."""
        results: list[list] = []

        async def work(node: Node) -> dict:
            for port, item in items:
                results.append(_pack(await node.process(port, item)))
            return {"ok": True, "results": results}

        res = await self._locked(work)
        return res if res["ok"] else {**res, "results": results}

    async def next_items(self, max_items: int = 1) -> dict:
        """Sources: the next outputs (at least one), or {"ok": True, "end": True} once the
        stream ended. Batch sources run ahead (runtime/run_ahead.py) and hand over what is
        ready; live sources hand over one at a time and do not read ahead (a frame read early
        would wait here, stale)."""
        async def work(node: Node) -> dict:
            if node.live:
                if self._gen is None:
                    self._gen = node.produce().__aiter__()
                try:
                    outs = [await self._gen.__anext__()]
                except StopAsyncIteration:
                    outs = []
            else:
                if self._ahead is None:
                    self._ahead = RunAhead(node.produce().__aiter__(), AHEAD_ITEMS)
                outs = await self._ahead.take(max_items)
            return {"ok": True, "outputs": _pack(outs), "end": not outs}

        return await self._locked(work)

    async def finish(self) -> dict:
        async def work(node: Node) -> dict:
            return {"ok": True, "outputs": _pack(await node.finish())}

        return await self._locked(work)

    async def close(self) -> dict:
        """Not behind the lock: it must reach a live source that is waiting for input."""
        self._drop_ahead()
        try:
            if self.node is not None:
                await self.node.close()
            return {"ok": True, "outputs": []}
        except Exception as exc:
            return _failure(exc)

    async def drain_events(self) -> list[dict]:
        events, self._events = self._events, []
        return events
