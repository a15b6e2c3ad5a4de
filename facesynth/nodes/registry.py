"""Node kinds by name. Every module in facesynth/nodes/ registers its kinds with @register."""
from __future__ import annotations

import difflib
import importlib
import pkgutil

from facesynth.nodes.base import Node

_KINDS: dict[str, type[Node]] = {}
_loaded = False


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node kind available to graph files under `cls.kind`."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind name")
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise ValueError(f"node kind '{cls.kind}' registered twice")
    _KINDS[cls.kind] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import facesynth.nodes as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("base", "registry"):
            importlib.import_module(f"facesynth.nodes.{mod.name}")
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
