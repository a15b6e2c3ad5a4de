"""Which store, holding what: the identity checkpoints, exports and resumed runs compare against.

A store's identity has two halves:
- `store_id`: a random id written once when the store is created (its marker, store/marker.py).
  Deleting a store and capturing again gives a new id, even with the same path.
- `fingerprint`: a short hash of what the store holds: the capture source, the frame counts
  (ok frames per group, train/eval split) and D0 (the `normalisation` attribute).
Whoever saves something derived from a store (a checkpoint, an export) records
`store_identity(store)`; whoever resumes from it calls `identity_mismatch(saved, current)`
and refuses a non-None answer, naming both (the text says which half differs and how).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from facesynth.errors import StoreError
from facesynth.input_files import InputFileError
from facesynth.store.marker import read_marker
from facesynth.store.zarr_limits import read_node_metadata

# capture attributes that say where the frames came from (others, like fps, describe them)
SOURCE_KEYS = ("source", "kind", "path", "file", "recording", "folder", "seed", "serial", "device",
               "size", "sha256", "hash")


def _root_attrs(path: Path) -> dict:
    try:
        meta = read_node_metadata(path)
    except FileNotFoundError:
        raise StoreError(f"no frame store at {path} (no zarr.json)") from None
    except (OSError, InputFileError) as exc:
        raise StoreError(f"store {path}: root zarr.json is damaged ({type(exc).__name__}: {exc})") from None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def _source(attrs: dict) -> dict:
    capture = attrs.get("capture") if isinstance(attrs.get("capture"), dict) else {}
    out = {k: capture[k] for k in SOURCE_KEYS if k in capture}
    for k in ("recording", "source"):  # a recording's path/size/hash may sit at the root too
        if k in attrs:
            out[k] = attrs[k]
    return out


def _frame_counts(path: Path) -> dict:
    """ok frames per group, and the train/eval split of the captured frames."""
    from facesynth.store.frame_store import FrameStore

    counts: dict[str, Any] = {"ok": {}}
    try:
        store = FrameStore.open(path, mode="r")
        for name in store.names():
            if name.endswith("/ok") and name.count("/") == 1:
                g = name.split("/")[0]
                ok = np.asarray(store.read(name), dtype=bool)
                counts["ok"][g] = int(ok.sum())
                if g == "raw" and store.has("raw/split"):
                    split = np.asarray(store.read("raw/split"))
                    counts["train"] = int((ok & (split == 0)).sum())
                    counts["eval"] = int((ok & (split == 1)).sum())
    except StoreError:
        raise
    except Exception as exc:  # damaged ok/split arrays: name the store, never a traceback
        raise StoreError(f"store {path}: cannot count its frames ({type(exc).__name__}: {exc}); "
                         f"run `facesynth store check {path}`") from None
    return counts


def fingerprint_of(source: Any, frames: Any, d0_mm: Any) -> str:
    """Short stable hash of what a store holds (independent of its id and path)."""
    blob = json.dumps({"source": source, "frames": frames, "d0_mm": d0_mm}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store_identity(store_or_path: Any) -> dict:
    """{"store_id", "created", "path", "fingerprint", "source", "frames", "d0_mm"} of a store.

    `store_or_path` is a FrameStore or a path. JSON-serialisable, so it can be saved in a
    checkpoint or export metadata as is. Raises StoreError when the path is no facesynth
    store (no marker) or its metadata is damaged.
    """
    path = Path(getattr(store_or_path, "path", store_or_path))
    marker = read_marker(path)
    if marker is None:
        raise StoreError(f"{path} has no store marker (facesynth_store.json): not a facesynth store, "
                         "or one from before markers; a run on it (`facesynth graph run`) adds one")
    attrs = _root_attrs(path)
    norm = attrs.get("normalisation") if isinstance(attrs.get("normalisation"), dict) else {}
    d0 = norm.get("d0_mm")
    d0 = float(d0) if isinstance(d0, (int, float)) else None
    source, frames = _source(attrs), _frame_counts(path)
    return {"store_id": marker["store_id"], "created": marker.get("created"), "path": str(path),
            "fingerprint": fingerprint_of(source, frames, d0), "source": source, "frames": frames, "d0_mm": d0}


def describe_identity(ident: dict) -> str:
    """One line a person can compare: id, creation time, source, frames, D0."""
    src = ident.get("source") or {}
    src_text = ", ".join(f"{k}={v}" for k, v in src.items()) if isinstance(src, dict) else str(src)
    fr = ident.get("frames") or {}
    fr_text = (f"{fr.get('train')} train + {fr.get('eval')} eval frames" if "train" in fr
               else f"ok frames {fr.get('ok', {})}")
    d0 = ident.get("d0_mm")
    return (f"store {ident.get('path', '?')} id {str(ident.get('store_id'))[:12]} created {ident.get('created')}, "
            f"source [{src_text or 'unknown'}], {fr_text}, D0 {'%.1f mm' % d0 if d0 is not None else 'not set'}")


def identity_mismatch(saved: dict | None, current: dict) -> str | None:
    """None when `saved` (recorded earlier) and `current` are the same store holding the same
    data; otherwise a sentence naming both and what differs. An empty/None `saved` (made by a
    facesynth without identities) is reported as a mismatch too; callers may choose to accept it."""
    if not saved or not saved.get("store_id"):
        return f"it records no store identity (made by an older facesynth); the store now is {describe_identity(current)}"
    if saved.get("store_id") != current.get("store_id"):
        return (f"it was made from another store ({describe_identity(saved)}), "
                f"not from this one ({describe_identity(current)})")
    diffs = [k for k in ("source", "frames", "d0_mm") if saved.get(k) != current.get(k)]
    if diffs or saved.get("fingerprint") != current.get("fingerprint"):
        what = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in diffs) or "fingerprint"
        return (f"the store {current.get('path')} (id {str(current.get('store_id'))[:12]}) holds other data "
                f"than when it was recorded: {what}")
    return None
