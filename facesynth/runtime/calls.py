"""Calls to node replicas, with retry on a restarted replica.

A replica may hold more than one call at once (runtime/feed.py): the one it works on and the
next, already sent, which hides the call's round trip. When the replica fails, the item it was
working on is charged with the error and the restart; a call sent to it before that restart is
sent again without a charge, since it failed, or was lost, with the replica and not by itself.
Each replica's restarts are counted in an epoch to tell the two apart. A call that reaches a
restarted worker before the supervisor has brought it up to date is refused there ("stale",
runtime/host.py) and sent again; the supervisor brings a rebuilt worker up to date only once
every call sent before its restart is back, so none of those runs there unaccounted for (Ray
does not keep an async actor's calls in order across a restart) and a worker's death is always
charged to the call it ran.

The retry budget is per item (`max_restarts` charged failures, counted until the item
succeeds): an item charged as part of a lost batch keeps that charge when it is retried alone.
Ray itself restarts a dead actor without a lifetime cap; this budget is what bounds retries.
A restarted replica is first brought up to date with the run's progress (`on_restarted`), so
a source does not redo chunks it already emitted in this run.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from facesynth.errors import RunError
from facesynth.runtime.backends import WorkerLost, wait_alive


class ReplicaCalls:
    """Sends calls to replicas and settles failed ones: retry, restart, or fail the run."""

    def __init__(self, backend: Any, record: Callable[[dict], None],
                 on_restarted: Callable[[Any, Any], Awaitable[None]] | None = None):
        self.backend = backend
        self.record = record
        self.on_restarted = on_restarted  # (pn, handle): tell a fresh replica what is done
        self._epochs: dict[int, int] = {}  # id(handle) -> restarts so far
        self._charges: dict[tuple[str, str], int] = {}  # (node, item key) -> failures charged, until it succeeds
        self._out: dict[tuple[int, int], set[asyncio.Future]] = {}  # (id(handle), epoch) -> calls not back

    def epoch(self, handle: Any) -> int:
        return self._epochs.get(id(handle), 0)

    def charged(self, node: str, key: str) -> int:
        return self._charges.get((node, key), 0)

    async def send(self, handle: Any, method: str, *args: Any) -> dict:
        """One call; a lost worker comes back as a failed result, never as an exception."""
        out = self._out.setdefault((id(handle), self.epoch(handle)), set())
        call = asyncio.ensure_future(self.backend.call(handle, method, *args))
        out.add(call)
        try:
            return await call
        except WorkerLost as exc:
            return {"ok": False, "error": f"worker lost: {exc}", "traceback": "", "lost": True}
        finally:
            out.discard(call)

    async def call(self, pn: Any, handle: Any, method: str, *args: Any, chunk: str = "-") -> dict:
        """Call and settle: the successful result, or RunError once retries are spent."""
        epoch = self.epoch(handle)
        return await self.settle(pn, handle, await self.send(handle, method, *args), epoch, method, args, chunk)

    async def settle(self, pn: Any, handle: Any, res: dict, epoch: int, method: str, args: tuple,
                     chunk: str) -> dict:
        """Retry `method(*args)`, sent at `epoch`, until it succeeds or `chunk`'s retries are spent."""
        while not res.get("ok"):
            await self.recover(pn, handle, res, epoch, chunk)
            epoch = self.epoch(handle)
            res = await self.send(handle, method, *args)
        for key in chunk.split(","):
            self._charges.pop((pn.id, key), None)
        return res

    async def recover(self, pn: Any, handle: Any, res: dict, epoch: int, chunk: str) -> bool:
        """After call `res` (sent at `epoch`) failed: make the replica usable again. Charges each
        item of `chunk` ("k1,k2": a lost batch) with the error and the restart (True), or nothing
        when the replica was restarted since the call was sent (False); raises RunError when an
        item has been charged more than `max_restarts` times."""
        if self.epoch(handle) != epoch:  # also a "stale" refusal by the replica restarted since
            if res.get("lost"):
                await self._wait_alive(pn, handle, chunk)
            return False
        pn.stats.errors += 1
        keys = chunk.split(",")
        for key in keys:
            self._charges[(pn.id, key)] = self.charged(pn.id, key) + 1
        attempt = max(self.charged(pn.id, key) for key in keys)
        fatal = attempt > pn.max_restarts or not res.get("retryable", True)
        self.record({"type": "error", "node": pn.id, "chunk": chunk, "error": res["error"],
                     "traceback": res.get("traceback", ""), "restart": attempt, "fatal": fatal})
        if fatal:
            raise RunError(pn.id, chunk, res["error"], res.get("traceback", ""))
        pn.stats.restarts += 1
        self._epochs[id(handle)] = epoch + 1
        if res.get("lost") or res.get("stale"):  # Ray restarts the actor: wait, then tell it where the run is
            await self._wait_alive(pn, handle, chunk)
            await self._calls_back(handle, epoch)
            await self._bring_up_to_date(pn, handle)
        else:
            await self._bring_up_to_date(pn, handle)
            await self.send(handle, "restart")
        return True

    async def _wait_alive(self, pn: Any, handle: Any, chunk: str) -> None:
        try:
            await wait_alive(self.backend, handle)
        except WorkerLost as exc:
            raise RunError(pn.id, chunk, f"worker lost and not restarted: {exc}") from None

    async def _calls_back(self, handle: Any, epoch: int, timeout_s: float = 60.0) -> None:
        """Wait for the calls sent to `handle` at `epoch`: the rebuilt worker refuses them
        until it is brought up to date, so they come back at once (or lost, if it died again)."""
        out = self._out.pop((id(handle), epoch), set())
        if out:
            await asyncio.wait(out, timeout=timeout_s)

    async def _bring_up_to_date(self, pn: Any, handle: Any) -> None:
        if self.on_restarted is not None:
            await self.on_restarted(pn, handle)
