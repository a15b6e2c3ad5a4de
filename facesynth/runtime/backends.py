"""Where node replicas live: in this process (tests, notebooks) or in Ray actors.

Both expose the same three things to the supervisor: create a replica host, call one of its
methods (awaitable), and tell how many CPUs `replicas: auto` means. A Ray worker that died
(killed, crashed) surfaces as WorkerLost; Ray restarts the actor and the supervisor retries.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any

from facesynth.errors import FacesynthError
from facesynth.nodes.base import NodeContext
from facesynth.runtime.host import NodeHost

NAMESPACE = "facesynth"


class WorkerLost(FacesynthError):
    """The process hosting a replica died; its current item must be retried."""


class LocalBackend:
    """Every replica is a NodeHost in this process, sharing its event loop."""

    name = "local"

    def cpus(self) -> int:
        return os.cpu_count() or 1

    def create(self, kind: str, params: dict, ctx: NodeContext, cpus: float | None, gpus: float,
               max_restarts: int, spread: bool, module: str | None = None) -> NodeHost:
        return NodeHost(kind, params, ctx, module)

    async def call(self, host: NodeHost, method: str, *args: Any) -> Any:
        return await getattr(host, method)(*args)

    def shutdown(self) -> None:
        pass


class RayBackend:
    """One async Ray actor per replica; embedded Ray on loopback, or an existing cluster."""

    name = "ray"

    def __init__(self, address: str | None = None):
        import ray

        self.ray = ray
        self._owns = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            # Ray nices workers to 15 by default; here the workers *are* the job
            os.environ.setdefault("RAY_worker_niceness", "0")
            kwargs: dict[str, Any] = dict(namespace=NAMESPACE, include_dashboard=False,
                                          log_to_driver=True, configure_logging=False)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
            self._owns = True
        self._actor_cls = ray.remote(NodeHost)

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def create(self, kind: str, params: dict, ctx: NodeContext, cpus: float | None, gpus: float,
               max_restarts: int, spread: bool, module: str | None = None) -> Any:
        opts: dict[str, Any] = dict(max_restarts=max_restarts, max_task_retries=0, max_concurrency=8)
        if cpus is not None:
            opts["num_cpus"] = cpus
        if gpus:
            opts["num_gpus"] = gpus
        if spread:
            opts["scheduling_strategy"] = "SPREAD"
        return self._actor_cls.options(**opts).remote(kind, params, ctx, module)

    async def call(self, handle: Any, method: str, *args: Any) -> Any:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        try:
            return await getattr(handle, method).remote(*args)
        except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
            raise WorkerLost(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def shutdown(self) -> None:
        if self._owns:
            self.ray.shutdown()


async def wait_alive(backend: Any, handle: Any, timeout_s: float = 60.0) -> None:
    """After WorkerLost: wait until Ray has restarted the actor (or give up)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await backend.call(handle, "ping")
            return
        except WorkerLost:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
