"""Whether a path may be a store: new, empty, or a facesynth store (cheap; no Zarr import).

Used by `graph validate` (a positioned diagnostic) and by every run before it writes.
"""
from __future__ import annotations

import os
from pathlib import Path

from facesynth.input_files import name_too_long, os_error_text
from facesynth.store.lock import LOCK
from facesynth.store.marker import MARKER, is_facesynth_store

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
    if not p.exists():
        return None if not p.is_symlink() else f"store path {p} is a dangling symlink"
    if not p.is_dir():
        return f"store path {p} is an existing file, not a store directory"
    if is_facesynth_store(p) or only_lock_files(p) or being_created(p):
        return None
    if (p / MARKER).exists():
        return f"store path {p} has a damaged store marker {MARKER}; facesynth will not write there"
    return (f"store path {p} is an existing directory that is not a facesynth store (it has no {MARKER}); "
            "facesynth writes only into a new directory or a store it made")
