"""Calls to node replicas, with retry on a restarted replica.

A replica may hold more than one call at once (runtime/feed.py): the one it works on and the
next, already sent, which hides the call's round trip. When the replica fails, the item it was
working on is charged with the error and the restart; a call sent to it before that restart is
sent again without a charge, since it failed, or was lost, with the replica and not by itself.
Each replica's restarts are counted in an epoch to tell the two apart.
"""
from __future__ import annotations

from typing import Any, Callable

from facesynth.errors import RunError
from facesynth.runtime.backends import WorkerLost, wait_alive


class ReplicaCalls:
    """Sends calls to replicas and settles failed ones: retry, restart, or fail the run."""

    def __init__(self, backend: Any, record: Callable[[dict], None]):
        self.backend = backend
        self.record = record
        self._epochs: dict[int, int] = {}  # id(handle) -> restarts so far

    def epoch(self, handle: Any) -> int:
        return self._epochs.get(id(handle), 0)

    async def send(self, handle: Any, method: str, *args: Any) -> dict:
        """One call; a lost worker comes back as a failed result, never as an exception."""
        try:
            return await self.backend.call(handle, method, *args)
        except WorkerLost as exc:
            return {"ok": False, "error": f"worker lost: {exc}", "traceback": "", "lost": True}

    async def call(self, pn: Any, handle: Any, method: str, *args: Any, chunk: str = "-") -> dict:
        """Call and settle: the successful result, or RunError once retries are spent."""
        epoch = self.epoch(handle)
        return await self.settle(pn, handle, await self.send(handle, method, *args), epoch, method, args, chunk)

    async def settle(self, pn: Any, handle: Any, res: dict, epoch: int, method: str, args: tuple,
                     chunk: str) -> dict:
        """Retry `method(*args)`, sent at `epoch`, until it succeeds or its retries are spent."""
        attempts = 0
        while not res.get("ok"):
            attempts += await self.recover(pn, handle, res, epoch, chunk, attempts + 1)
            epoch = self.epoch(handle)
            res = await self.send(handle, method, *args)
        return res

    async def recover(self, pn: Any, handle: Any, res: dict, epoch: int, chunk: str, attempt: int) -> bool:
        """After call `res` (sent at `epoch`) failed: make the replica usable again. Charges
        `chunk` with the error and the restart (True), or not when the replica was restarted
        since the call was sent (False); raises RunError when `attempt` is past the limit."""
        if self.epoch(handle) != epoch:
            if res.get("lost"):
                await wait_alive(self.backend, handle)
            return False
        pn.stats.errors += 1
        fatal = attempt > pn.max_restarts or not res.get("retryable", True)
        self.record({"type": "error", "node": pn.id, "chunk": chunk, "error": res["error"],
                     "traceback": res.get("traceback", ""), "restart": attempt, "fatal": fatal})
        if fatal:
            raise RunError(pn.id, chunk, res["error"], res.get("traceback", ""))
        pn.stats.restarts += 1
        self._epochs[id(handle)] = epoch + 1
        if res.get("lost"):
            await wait_alive(self.backend, handle)
        else:
            await self.send(handle, "restart")
        return True
