"""The marker file that makes a directory a facesynth store, and the store's id.

`<store>/facesynth_store.json` is written once, when the store is created:
{"format": "facesynth-store", "store_id", "created", "facesynth_version"}. The same id is
written into the Zarr root's attributes (`store_id`) first, and the two are checked together:
a marker alone (a two-key file anyone could write) does not make a directory a store. It is
what `--restart` looks for before deleting anything (a directory that is no store is never
touched), and its id is the "which store is this" half of the store's identity (store/identity.py).
Stores made before the marker existed (a Zarr root group with a `chunk_frames` attribute) are
recognised as legacy stores and get a marker the next time a run opens them; stores made before
the id was copied into the root (a marker, and a root group with `chunk_frames`) get it then too.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from facesynth.errors import StoreError
from facesynth.input_files import KB, InputFileError, read_json
from facesynth.store.zarr_limits import read_node_metadata

MARKER = "facesynth_store.json"
FORMAT = "facesynth-store"
MAX_MARKER_BYTES = 64 * KB  # as written: ~250 bytes


def facesynth_version() -> str:
    try:
        from importlib.metadata import version

        return version("facesynth")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def marker_path(store: str | os.PathLike) -> Path:
    return Path(store) / MARKER


def new_store_id() -> str:
    return uuid.uuid4().hex


def read_marker(store: str | os.PathLike) -> dict | None:
    """The marker's content; None when there is none. A marker that does not parse, or is not a
    regular file within its size limit, is a StoreError naming it."""
    f = marker_path(store)
    try:
        data = read_json(f, MAX_MARKER_BYTES, "store marker")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except InputFileError as exc:
        raise StoreError(f"store marker {exc}") from None
    except OSError as exc:
        raise StoreError(f"store marker {f} cannot be read ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("store_id"), str):
        raise StoreError(f"store marker {f} is damaged (not a facesynth store marker); "
                         "if this is your store, move its data elsewhere and capture again")
    return data


def root_attributes(store: str | os.PathLike) -> dict | None:
    """The attributes of the store's Zarr root group (its zarr.json read within its limits);
    None when there is no such group or its zarr.json cannot be read."""
    try:
        meta = read_node_metadata(Path(store))
    except (OSError, InputFileError):
        return None
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        return None
    if not isinstance(meta.get("attributes"), dict):
        return None
    return meta["attributes"]


def is_legacy_store(store: str | os.PathLike) -> bool:
    """A store written before markers existed: a Zarr v3 root group with a `chunk_frames` attribute."""
    attrs = root_attributes(store)
    return attrs is not None and isinstance(attrs.get("chunk_frames"), int)


def marker_problem(store: str | os.PathLike) -> str | None:
    """Why `store`'s marker does not make it a facesynth store (a sentence), or None when it does:
    the root's `store_id` is the marker's (or the root is one from before ids were copied there:
    a group with `chunk_frames` and no id), or the root zarr.json exists but cannot be read (a
    damaged store: `store check` reports it, `--restart` starts it over)."""
    p = Path(store)
    marker = read_marker(p)
    if marker is None:
        return f"{p} has no store marker {MARKER}"
    root = p / "zarr.json"
    attrs = root_attributes(p)
    if attrs is None:
        return None if root.exists() or root.is_symlink() else (
            f"{p} has a store marker {MARKER} but no Zarr root (zarr.json) holding its store id")
    root_id = attrs.get("store_id")
    if root_id is None and isinstance(attrs.get("chunk_frames"), int):
        return None
    if root_id != marker["store_id"]:
        return (f"the store id in {p / MARKER} ({str(marker['store_id'])[:12]}) is not the one in its Zarr root "
                f"{root} ({str(root_id)[:12]}): the marker was copied or made by hand")
    return None


def is_facesynth_store(store: str | os.PathLike) -> bool:
    """Whether `store` is a directory facesynth made (its marker and root agree, or a legacy store)."""
    p = Path(store)
    if not p.is_dir():
        return False
    try:
        if read_marker(p) is None:
            return is_legacy_store(p)
        return marker_problem(p) is None
    except StoreError:
        return False


def write_marker(store: str | os.PathLike, new_store: bool = True, store_id: str | None = None) -> dict:
    """Write the marker if there is none (atomically: never a half-written one); return it.
    `new_store` False: adopting a legacy store, whose old writes may have skipped all-fill chunks.
    `store_id`: the id already written into the root's attributes (a new one if None)."""
    have = read_marker(store)
    if have is not None:
        return have
    marker = {"format": FORMAT, "store_id": store_id or new_store_id(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "created_unix": time.time(),
              "facesynth_version": facesynth_version()}
    if new_store:
        marker["chunk_files"] = "always"  # every written chunk has a file: a missing one is damage
    p = Path(store)
    fd, tmp = tempfile.mkstemp(prefix=".marker-", dir=p)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(marker, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, marker_path(p))  # fails if another process wrote one first
        except FileExistsError:
            return read_marker(p) or marker
    finally:
        os.unlink(tmp)
    return marker
