"""The msgpack TCP input (live.msgpack_in) against real sockets on 127.0.0.1: a connection cap,
an idle timeout, and messages cut short by a disconnect, each closed and counted (issue 14)."""
from __future__ import annotations

import asyncio
import time

import numpy as np
from live_helpers import SIZE, landmark_sets

from facesynth.live import protocol as lp
from facesynth.nodes import registry
from facesynth.nodes.base import NodeContext


def make(**params):
    cls = registry.get("live.msgpack_in")
    reports: list = []
    ctx = NodeContext(node_id="net", kind="live.msgpack_in", reporter=lambda name, data: reports.append((name, data)))
    return cls(cls.Params.model_validate({"port": 0, "size": SIZE, **params}), ctx), reports


async def wait_until(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def closed_by_server(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bool:
    """True when the server closed this connection (EOF or reset) within the timeout."""
    try:
        return await asyncio.wait_for(reader.read(1), timeout_s) == b""
    except ConnectionError:
        return True


def test_defaults_are_sane():
    p = registry.get("live.msgpack_in").Params()
    assert p.max_connections == 16 and p.client_idle_timeout_s == 30.0


async def test_connections_over_the_cap_are_closed_and_counted():
    node, _ = make(max_connections=3, client_idle_timeout_s=0)
    await node.setup()
    host, port = node.bound
    clients = []
    for _ in range(5):  # one after another, so which two are over the cap is known
        clients.append(await asyncio.open_connection(host, port))
        await wait_until(lambda: node.open_connections + node.refused == len(clients))
    assert (node.open_connections, node.refused) == (3, 2)
    for r, _ in clients[3:]:
        assert await closed_by_server(r)
    # the held ones still work: a message on the first is accepted
    sets = landmark_sets(1)
    clients[0][1].write(lp.frame_bytes(lp.encode_landmark_message(sets[0], 1)))
    await clients[0][1].drain()
    await wait_until(lambda: node.received == 1)
    # a freed slot is taken by the next client
    clients[1][1].close()
    await wait_until(lambda: node.open_connections == 2)
    clients.append(await asyncio.open_connection(host, port))
    await wait_until(lambda: node.open_connections == 3)
    assert node.refused == 2 and node.connections == 4
    counts = node.counts()
    assert (counts["refused"], counts["open_connections"], counts["drops"]) == (2, 3, 0)
    await node.close()  # closing the node closes the clients it still holds
    for i in (0, 2, 5):
        assert await closed_by_server(clients[i][0])
    for _, w in clients:
        w.close()


async def test_idle_connection_is_closed_after_the_timeout_and_counted():
    node, _ = make(client_idle_timeout_s=0.3)
    await node.setup()
    host, port = node.bound
    idle_r, idle_w = await asyncio.open_connection(host, port)
    busy_r, busy_w = await asyncio.open_connection(host, port)
    sets = landmark_sets(8)
    t0 = time.monotonic()
    for i in range(8):  # a message every 0.1 s for 0.8 s: never idle for 0.3 s
        busy_w.write(lp.frame_bytes(lp.encode_landmark_message(sets[i], i)))
        await busy_w.drain()
        await asyncio.sleep(0.1)
    assert await closed_by_server(idle_r)
    held_s = time.monotonic() - t0
    assert node.idle_closed == 1 and held_s >= 0.3
    assert node.received == 8 and node.drops == 0  # the busy client was kept
    assert not busy_r.at_eof()
    assert await closed_by_server(busy_r)  # and once it stops sending, it is closed too
    assert node.idle_closed == 2 and node.open_connections == 0
    idle_w.close()
    busy_w.close()
    await node.close()


async def test_messages_cut_short_by_a_disconnect_are_counted_truncated():
    node, reports = make(max_messages=1, report_every_s=60)
    await node.setup()
    host, port = node.bound
    sets = landmark_sets(2)
    whole = lp.frame_bytes(lp.encode_landmark_message(sets[0], 1))
    second = lp.frame_bytes(lp.encode_landmark_message(sets[1], 2))
    for tail in (second[: len(second) // 2], second[:2], b""):  # half a message, half a prefix, nothing
        _, w = await asyncio.open_connection(host, port)
        w.write(whole + tail)
        await w.drain()
        w.close()
        await w.wait_closed()
    await wait_until(lambda: node.received == 5 and node.open_connections == 0)
    assert dict(node.reasons) == {"truncated": 2}
    gen = node.produce().__aiter__()
    first = await asyncio.wait_for(gen.__anext__(), 10)
    np.testing.assert_array_equal(first.item["landmarks"], sets[0])
    assert first.item["drops"] == 2
    async for _ in gen:
        pass
    final = [d for name, d in reports if name == "live.input" and d.get("final")][0]
    assert final["reasons"] == {"truncated": 2} and final["refused"] == 0 and final["idle_closed"] == 0
    await node.close()
