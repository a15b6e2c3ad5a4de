"""Node kinds by name. Node adapters live in their stage package (`facesynth/<stage>/nodes.py` or
`*_nodes.py`) and register their kinds with @register; `facesynth/nodes/` holds what every node
shares and the generic store/bench nodes."""
from __future__ import annotations

import difflib
import importlib
import pkgutil

from facesynth.nodes.base import Node

_KINDS: dict[str, type[Node]] = {}
_loaded = False

# Packages whose node modules are discovered, in dataflow order.
NODE_PACKAGES = ("facesynth.capture", "facesynth.face", "facesynth.depth", "facesynth.model", "facesynth.live",
                 "facesynth.nodes")
_SHARED = ("base", "registry")


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node kind available to graph files under `cls.kind`."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind name")
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise ValueError(f"node kind '{cls.kind}' registered twice")
    _KINDS[cls.kind] = cls
    return cls


def node_modules() -> list[str]:
    """Every module that defines node kinds: a stage's `nodes` / `*_nodes` modules, and every
    module of facesynth.nodes except the shared base and registry."""
    found = []
    packages = list(NODE_PACKAGES)
    for pkg_name in packages:
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.ispkg:  # a device family's sub-package (capture/kinect/, ...) holds nodes of its own
                packages.append(f"{pkg_name}.{mod.name}")
                continue
            if pkg_name == "facesynth.nodes":
                if mod.name not in _SHARED:
                    found.append(f"{pkg_name}.{mod.name}")
            elif mod.name == "nodes" or mod.name.endswith("_nodes"):
                found.append(f"{pkg_name}.{mod.name}")
    return found


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for name in node_modules():
        importlib.import_module(name)
    _loaded = True


def kinds() -> dict[str, type[Node]]:
    _load_all()
    return dict(sorted(_KINDS.items()))


def get(kind: str) -> type[Node] | None:
    return kinds().get(kind)


def load(kind: str, module: str | None = None) -> type[Node] | None:
    """The class of `kind`, importing only `module` when given (a worker process then skips
    the heavy imports of every other node kind), else every node module."""
    if module is not None and kind not in _KINDS:
        importlib.import_module(module)
    return _KINDS.get(kind) or get(kind)


def suggest(kind: str) -> str | None:
    """The closest known kind name, for 'did you mean' hints."""
    close = difflib.get_close_matches(kind, list(kinds()), n=1, cutoff=0.5)
    return close[0] if close else None
