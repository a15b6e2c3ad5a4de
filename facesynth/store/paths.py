"""Whether a path may be a store: new, empty, or a facesynth store (cheap; no Zarr import).

Used by `graph validate` (a positioned diagnostic) and by every run before it writes.
"""
from __future__ import annotations

import os
from pathlib import Path

from facesynth.errors import StoreError
from facesynth.input_files import name_too_long, os_error_text
from facesynth.store.lock import LOCK
from facesynth.store.marker import MARKER, is_facesynth_store, marker_problem

LOCK_FILES = {LOCK, ".lock.guard"}


def only_lock_files(p: Path) -> bool:
    """An empty directory, or one holding only a lock left by a run that died before creating the store."""
    try:
        return all(e.name in LOCK_FILES or e.name.startswith(".lock-") for e in p.iterdir())
    except OSError:
        return False


def being_created(p: Path) -> bool:
    """A store a run is creating right now (or died creating): facesynth's lock is there and
    nothing but the first files FrameStore.create writes (the Zarr root, a marker being written).
    Another run reading it in that moment must be told "in use" by the lock, not "not a store"."""
    try:
        names = [e.name for e in p.iterdir()]
    except OSError:
        return False
    return LOCK in names and all(n in LOCK_FILES or n == "zarr.json" or n.startswith((".lock-", ".marker-"))
                                 for n in names)


def store_path_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be a store (a sentence), or None: it is new, empty, or a facesynth store."""
    why = name_too_long(path)
    if why:
        return f"store path {why}"
    try:
        return _path_problem(Path(path))
    except OSError as exc:  # no permission to look, a loop of links...
        return f"store path {os_error_text(exc)}"


def _path_problem(p: Path) -> str | None:
    for parent in [p, *p.parents]:
        if parent.exists() or parent.is_symlink():
            if parent != p and not parent.is_dir():
                return f"store path {p}: {parent} is a file, not a directory"
            break
    runs = Path(f"{p}.runs")
    if (runs.exists() or runs.is_symlink()) and not runs.is_dir():
        return (f"store path {p}: {runs}, where its run logs go, is a file, not a directory; "
                "move it away (facesynth does not delete it)")
    if not p.exists():
        return None if not p.is_symlink() else f"store path {p} is a dangling symlink"
    if not p.is_dir():
        return f"store path {p} is an existing file, not a store directory"
    if is_facesynth_store(p) or only_lock_files(p) or being_created(p):
        return None
    if (p / MARKER).exists() or (p / MARKER).is_symlink():
        try:
            why = marker_problem(p) or "its store marker does not match its Zarr root"
        except StoreError as exc:
            why = str(exc)
        return f"store path {p} is not a facesynth store: {why}; facesynth will not write there"
    return (f"store path {p} is an existing directory that is not a facesynth store (it has no {MARKER}); "
            "facesynth writes only into a new directory or a store it made")


def link_on_path(store: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """The first symbolic link on the way from `store` (excluded) to `path` (included), or None.
    facesynth writes no links in a store: what it edits or removes through one would be outside it."""
    store, path = Path(store), Path(path)
    try:
        rel = path.relative_to(store)
    except ValueError:
        return path
    here = store
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return here
    return None
