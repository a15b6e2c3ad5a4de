"""Edge policies: block waits for room, drop_oldest and latest drop and count, EOS always arrives last."""
from __future__ import annotations

import asyncio

from facesynth.runtime.edges import EOS, Edge, NodeInbox


def make(policy: str, bound: int = 2) -> tuple[NodeInbox, Edge]:
    edge = Edge(id="a/o->b/i", src="a/o", dst="b/i", bound=bound, policy=policy)
    return NodeInbox([edge]), edge


async def test_block_waits_until_the_consumer_takes():
    inbox, edge = make("block", bound=2)
    await inbox.put(edge, 1)
    await inbox.put(edge, 2)
    third = asyncio.create_task(inbox.put(edge, 3))
    await asyncio.sleep(0.05)
    assert not third.done() and edge.depth == 2
    assert await inbox.get() == ("i", 1)
    await asyncio.wait_for(third, 1)
    assert [await inbox.get() for _ in range(2)] == [("i", 2), ("i", 3)]
    assert edge.stats.blocked_s >= 0.04 and edge.stats.drops == 0


async def test_drop_oldest_and_latest_count_drops_and_keep_eos():
    inbox, edge = make("drop_oldest", bound=2)
    for i in range(5):
        await inbox.put(edge, i)
    await inbox.close(edge)
    got = [await inbox.get() for _ in range(3)]
    assert got == [("i", 3), ("i", 4), ("", EOS)] and edge.stats.drops == 3
    inbox, edge = make("latest", bound=4)
    for i in range(5):
        await inbox.put(edge, i)
    await inbox.close(edge)
    assert [await inbox.get() for _ in range(2)] == [("i", 4), ("", EOS)] and edge.stats.drops == 4


async def test_two_edges_are_served_fairly_and_end_together():
    a = Edge(id="x/o->n/a", src="x/o", dst="n/a", bound=8, policy="block")
    b = Edge(id="y/o->n/b", src="y/o", dst="n/b", bound=8, policy="block")
    inbox = NodeInbox([a, b])
    for i in range(3):
        await inbox.put(a, f"a{i}")
        await inbox.put(b, f"b{i}")
    await inbox.close(a)
    got = [await inbox.get() for _ in range(6)]
    assert [p for p, _ in got] == ["a", "b", "a", "b", "a", "b"]
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0.02)
    assert not waiting.done()  # b is still open
    await inbox.close(b)
    assert await asyncio.wait_for(waiting, 1) == ("", EOS)
