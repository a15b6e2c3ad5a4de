"""The marker file that makes a directory a facesynth store, and the store's id.

`<store>/facesynth_store.json` is written once, when the store is created:
{"format": "facesynth-store", "store_id", "created", "facesynth_version"}. It is what
`--restart` looks for before deleting anything (a directory without it is never deleted),
and its id is the "which store is this" half of the store's identity (store/identity.py).
Stores made before the marker existed (a Zarr root group with a `chunk_frames` attribute)
are recognised as legacy stores and get a marker the next time a run opens them.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from facesynth.errors import StoreError

MARKER = "facesynth_store.json"
FORMAT = "facesynth-store"


def facesynth_version() -> str:
    try:
        from importlib.metadata import version

        return version("facesynth")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def marker_path(store: str | os.PathLike) -> Path:
    return Path(store) / MARKER


def read_marker(store: str | os.PathLike) -> dict | None:
    """The marker's content; None when there is none. A marker that does not parse is an error."""
    f = marker_path(store)
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"store marker {f} cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("store_id"), str):
        raise StoreError(f"store marker {f} is damaged (not a facesynth store marker); "
                         "if this is your store, move its data elsewhere and capture again")
    return data


def is_legacy_store(store: str | os.PathLike) -> bool:
    """A store written before markers existed: a Zarr v3 root group with a `chunk_frames` attribute."""
    try:
        meta = json.loads((Path(store) / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (isinstance(meta, dict) and meta.get("zarr_format") == 3 and meta.get("node_type") == "group"
            and isinstance(meta.get("attributes"), dict) and isinstance(meta["attributes"].get("chunk_frames"), int))


def is_facesynth_store(store: str | os.PathLike) -> bool:
    """Whether `store` is a directory facesynth made (its marker, or a legacy store)."""
    p = Path(store)
    if not p.is_dir():
        return False
    try:
        return read_marker(p) is not None or is_legacy_store(p)
    except StoreError:
        return False


def write_marker(store: str | os.PathLike, new_store: bool = True) -> dict:
    """Write the marker if there is none (atomically: never a half-written one); return it.
    `new_store` False: adopting a legacy store, whose old writes may have skipped all-fill chunks."""
    have = read_marker(store)
    if have is not None:
        return have
    marker = {"format": FORMAT, "store_id": uuid.uuid4().hex,
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
