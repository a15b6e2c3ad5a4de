"""Where node replicas live: in this process (tests, notebooks) or in Ray actors.

Both expose the same three things to the supervisor: create a replica host, call one of its
methods (awaitable), and tell how many CPUs `replicas: auto` means. A Ray worker that died
(killed, crashed) surfaces as WorkerLost; Ray restarts the actor and the supervisor retries.

Embedded Ray listens on loopback only: Ray takes its node address from the environment when it
is imported, so that is set before the import; every server (GCS, raylet, workers, the driver,
the runtime-env agent, the autoscaler's metrics endpoint) then binds that address. The
dashboard, its agent and metrics collection are off. Joining a cluster (`--address`) is the
way to expose anything.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import sys
import threading
from typing import Any

from facesynth.errors import FacesynthError
from facesynth.nodes.base import NodeContext
from facesynth.runtime.host import NodeHost

NAMESPACE = "facesynth"


class WorkerLost(FacesynthError):
    """The process hosting a replica died; its current item must be retried."""


class ExposedRayError(FacesynthError):
    """Embedded Ray would listen beyond loopback; it was stopped before running anything."""

    retryable = False


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
        if not address:
            _loopback_environment()
        import ray

        self.ray = ray
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(namespace=NAMESPACE, include_dashboard=False,
                                          log_to_driver=True, configure_logging=False)
            with _signals_kept():  # ray.init replaces SIGTERM's handler (sys.exit(15))
                try:
                    if address:
                        ray.init(address=address, **kwargs)
                    else:
                        _cluster_mode_off()
                        ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1",
                                 _system_config={"enable_metrics_collection": False}, **kwargs)
                except SystemExit as exc:  # SIGTERM while Ray starts (its handler): stop like Ctrl-C
                    ray.shutdown()
                    raise KeyboardInterrupt from exc
            self._owns = True
            node_ip = ray.util.get_node_ip_address()
            if not address and not _is_loopback(node_ip):
                ray.shutdown()
                raise ExposedRayError(f"embedded Ray took the address {node_ip}, not loopback: start Ray "
                                      "yourself (`ray start --head`) and pass --address to choose what it exposes")
        self._actor_cls = ray.remote(NodeHost)

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def create(self, kind: str, params: dict, ctx: NodeContext, cpus: float | None, gpus: float,
               max_restarts: int, spread: bool, module: str | None = None) -> Any:
        # Ray restarts a dead actor without a lifetime cap; the supervisor's budget is per item
        # (runtime/calls.py), so a long run survives any number of worker deaths that each retry fixes
        opts: dict[str, Any] = dict(max_restarts=-1, max_task_retries=0, max_concurrency=8)
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


def _loopback_environment() -> None:
    """What embedded Ray reads from the environment, set before `import ray` reads it."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node address: loopback, not the LAN address
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing phones home
    # Ray nices workers to 15 by default; here the workers *are* the job
    os.environ.setdefault("RAY_worker_niceness", "0")


def _cluster_mode_off() -> None:
    """When Ray was imported before _loopback_environment ran, its import-time reading of the
    variable is corrected in place (the constant is read at each ray.init)."""
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None and getattr(consts, "ENABLE_RAY_CLUSTER", False):
        consts.ENABLE_RAY_CLUSTER = False


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class _signals_kept:
    """Restores SIGTERM and SIGINT handlers after ray.init: how a run stops is the caller's choice."""

    def __enter__(self) -> None:
        self._main = threading.current_thread() is threading.main_thread()
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if self._main else {}

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._saved.items():
            if handler is not None:
                signal.signal(sig, handler)


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
