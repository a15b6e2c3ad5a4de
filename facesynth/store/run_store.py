"""What a run may do to its store path: check it, lock it, start it over, create it.

The rules (docs/architecture.md, "Stores"): a store path is a new directory or an existing
facesynth store (its marker and root, store/marker.py); anything else is refused before a byte
is written. `--restart` acts only on a facesynth store, and only while holding its lock: it
removes what facesynth writes there (Zarr nodes, marker, progress) and keeps and names anything
else; the run log directory `<store>.runs/` beside it is kept. Nothing outside the store is deleted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from facesynth.errors import NotAStoreError, StoreError
from facesynth.store.frame_store import FrameStore
from facesynth.store.lock import StoreLock, _warn_stderr
from facesynth.store.marker import MARKER, is_facesynth_store, marker_problem
from facesynth.store.paths import LOCK_FILES, being_created, only_lock_files, store_path_problem

# what facesynth writes at a store's top level, besides its Zarr nodes and _progress/
OWN_FILES = {"zarr.json", MARKER, ".attrs.lock"}
OWN_PREFIXES = (".lock-", ".marker-")


def _remove_chunks(d: Path, left: list[Path]) -> None:
    """Chunk files under an array's c/ folder (every path component a chunk index); others are left."""
    for e in d.iterdir():
        if not e.name.isdigit():
            left.append(e)
        elif e.is_dir() and not e.is_symlink():
            _remove_chunks(e, left)
        else:
            e.unlink()
    _rmdir_if_empty(d)


def _remove_node(d: Path, left: list[Path]) -> None:
    """A Zarr node facesynth wrote: its zarr.json, its chunks, its child nodes; nothing else."""
    for e in d.iterdir():
        real_dir = e.is_dir() and not e.is_symlink()
        if e.name == "zarr.json" and not real_dir:
            e.unlink()
        elif e.name == "c" and real_dir:
            _remove_chunks(e, left)
        elif real_dir and (e / "zarr.json").is_file() and not (e / "zarr.json").is_symlink():
            _remove_node(e, left)
        else:
            left.append(e)
    _rmdir_if_empty(d)


def _rmdir_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:  # something facesynth did not write is still in it: kept (and listed)
        pass


def clear_store(path: str | os.PathLike) -> list[Path]:
    """Delete what facesynth wrote in a store (its Zarr nodes, marker, progress), keeping its lock
    (the caller holds it) and anything else, which is returned so the caller can say so. Refuses
    (NotAStoreError, nothing deleted) anything that is not a facesynth store."""
    p = Path(path)
    if not p.exists() or only_lock_files(p):
        return []
    if being_created(p):  # a run died creating it: its root only, no frames yet
        (p / "zarr.json").unlink(missing_ok=True)
        return []
    if not is_facesynth_store(p):
        raise NotAStoreError(f"--restart refused: {p} is not a facesynth store ({marker_problem_text(p)}); "
                             "nothing was deleted. Check store.path, or delete it yourself if you meant to")
    left: list[Path] = []
    for entry in sorted(p.iterdir()):
        real_dir = entry.is_dir() and not entry.is_symlink()
        if entry.name in LOCK_FILES:
            continue
        if not real_dir and (entry.name in OWN_FILES or entry.name.startswith(OWN_PREFIXES)):
            entry.unlink()
        elif entry.name == "_progress" and real_dir:
            for f in entry.iterdir():
                if f.name.endswith((".jsonl", ".jsonl.tmp")) and not (f.is_dir() and not f.is_symlink()):
                    f.unlink()
                else:
                    left.append(f)
            _rmdir_if_empty(entry)
        elif real_dir and (entry / "zarr.json").is_file() and not (entry / "zarr.json").is_symlink():
            _remove_node(entry, left)
        else:
            left.append(entry)
    return left


def marker_problem_text(p: Path) -> str:
    try:
        return marker_problem(p) or f"no {MARKER}"
    except StoreError as exc:
        return str(exc)


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
            left = clear_store(path)
            if left:
                more = f" and {len(left) - 20} more" if len(left) > 20 else ""
                shown = ", ".join(str(f) for f in left[:20]) + more
                warn(f"--restart removed only what facesynth wrote in {path}; it kept {len(left)} other "
                     f"file(s) there: {shown} (move them out of the store if they do not belong there)")
        FrameStore.create(path, chunk_frames=chunk_frames)
    except BaseException:
        lock.release()
        raise
    return lock
