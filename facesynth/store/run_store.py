"""What a run may do to its store path: check it, lock it, start it over, create it.

The rules (docs/architecture.md, "Stores"): a store path is a new directory or an existing
facesynth store (its marker, store/marker.py); anything else is refused before a byte is
written. `--restart` empties only a facesynth store, and only while holding its lock; the
run log directory `<store>.runs/` beside it is kept. Nothing outside the store is deleted.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from facesynth.errors import NotAStoreError
from facesynth.store.frame_store import FrameStore
from facesynth.store.lock import StoreLock, _warn_stderr
from facesynth.store.marker import MARKER, is_facesynth_store
from facesynth.store.paths import LOCK_FILES, being_created, only_lock_files, store_path_problem

def clear_store(path: str | os.PathLike) -> None:
    """Delete the contents of a facesynth store, keeping its lock (the caller holds it).
    Refuses (NotAStoreError, nothing deleted) anything that is not a facesynth store."""
    p = Path(path)
    if not p.exists() or only_lock_files(p):
        return
    if being_created(p):  # a run died creating it: its root only, no frames yet
        (p / "zarr.json").unlink(missing_ok=True)
        return
    if not is_facesynth_store(p):
        raise NotAStoreError(f"--restart refused: {p} is not a facesynth store (no {MARKER}); "
                             "nothing was deleted. Check store.path, or delete it yourself if you meant to")
    for entry in p.iterdir():
        if entry.name in LOCK_FILES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def open_run_store(path: str | os.PathLike, run_id: str, chunk_frames: int, restart: bool = False,
                   warn: Callable[[str], None] = _warn_stderr) -> StoreLock:
    """Check the path, take the store's lock, empty it on `restart`, create it; return the lock
    (the caller releases it when the run ends, however it ends)."""
    problem = store_path_problem(path)
    if problem:
        raise NotAStoreError(problem + ("; --restart deletes only a facesynth store, nothing was deleted"
                                        if restart else ""))
    lock = StoreLock(path, run_id, warn=warn).acquire()
    try:
        if restart:
            clear_store(path)
        FrameStore.create(path, chunk_frames=chunk_frames)
    except BaseException:
        lock.release()
        raise
    return lock
