"""Which recording a store was captured from: path, size and a cheap content hash.

A store keeps the identity of its recording in its `capture` attribute (so the store's
fingerprint, store/identity.py, sees it too). A rerun on that store with another recording
would mix frames of two captures in one store, so it is refused before anything is written.
The hash reads the first and last MiB, the calibration attachment and the time and byte offset
of every frame (from the pass that counts the frames, which reads the block headers anyway):
a few milliseconds more for any file size, and two captures never agree on all of it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from facesynth.errors import SourceMismatchError

HASH_SPAN = 1 << 20  # bytes hashed at each end of the file


def recording_identity(path: str | os.PathLike, calibration_json: bytes | None = None,
                       frames_digest: str = "") -> dict:
    """{"path", "size", "sha256"} of a recording file (sha256 of size, head, tail, calibration, frames)."""
    p = Path(path).resolve()
    size = p.stat().st_size
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with open(p, "rb") as f:
        h.update(f.read(HASH_SPAN))
        if size > HASH_SPAN:
            f.seek(max(HASH_SPAN, size - HASH_SPAN))
            h.update(f.read(HASH_SPAN))
    h.update(calibration_json or b"")
    h.update(frames_digest.encode())
    return {"path": str(p), "size": size, "sha256": h.hexdigest()}


def check_same_recording(store_path: str, stored: dict | None, current: dict) -> None:
    """Refuse (SourceMismatchError) a store made from another recording than `current`.

    The content decides, not the path: a recording moved elsewhere is the same recording, a
    file overwritten in place by another capture is not. A store without a recorded identity
    (new, or from before identities) is accepted.
    """
    if not isinstance(stored, dict) or "sha256" not in stored:
        return
    if stored.get("sha256") == current["sha256"] and stored.get("size") == current["size"]:
        return
    same_path = stored.get("path") == current["path"]
    what = ("that file has changed since (other bytes now)" if same_path
            else f"this run reads {current['path']} ({current['size']} bytes)")
    raise SourceMismatchError(
        f"store {store_path} was captured from recording {stored.get('path')} ({stored.get('size')} bytes, "
        f"sha256 {str(stored.get('sha256'))[:12]}), but {what}, sha256 {current['sha256'][:12]}: a different "
        f"recording. Nothing was written. Rerun with --restart to capture this recording into {store_path} "
        "from scratch (its frames are deleted), or give another store (--store PATH).")


def check_store_recording(store, current: dict | None) -> None:
    """check_same_recording for a store's recorded `capture` attribute; `current` None (a live
    device: nothing to tie the store to) checks nothing."""
    if current is None:
        return
    stored = store.attrs.get("capture")
    check_same_recording(str(store.path), stored.get("recording") if isinstance(stored, dict) else None, current)
