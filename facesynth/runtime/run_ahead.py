"""Drive a source's async iterator ahead of its reader, a bounded number of items.

A batch source (a camera file, a synthetic head, the store) keeps producing while the
supervisor routes what it already has, so one call can hand over several items (a call to a
Ray actor costs about a millisecond of CPU on each side; fewer calls, less overhead). At most
`limit` items wait here, so backpressure still reaches the source.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator


class RunAhead:
    """Buffers up to `limit` items of `it`, produced in a background task of the running loop."""

    def __init__(self, it: AsyncIterator[Any], limit: int):
        self._it = it
        self._limit = max(1, limit)
        self._buf: deque[Any] = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()  # an item came, the stream ended, or it failed
        self._room = asyncio.Event()
        self._room.set()
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                await self._room.wait()
                self._buf.append(await self._it.__anext__())
                if len(self._buf) >= self._limit:
                    self._room.clear()
                self._changed.set()
        except StopAsyncIteration:
            self._ended = True
        except Exception as exc:  # handed to the reader once the items before it are taken
            self._error = exc
        self._changed.set()

    async def take(self, max_items: int) -> list[Any]:
        """The items ready now, at most `max_items` (waits for one); [] once the stream ended.
        Raises what the iterator raised, after every item produced before it was taken."""
        while not self._buf and not self._ended and self._error is None:
            self._changed.clear()
            await self._changed.wait()
        if not self._buf:
            if self._error is not None:
                raise self._error
            return []
        items = [self._buf.popleft() for _ in range(min(max(1, max_items), len(self._buf)))]
        self._room.set()
        return items

    def cancel(self) -> None:
        self._task.cancel()
