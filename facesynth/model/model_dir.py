"""The model directory (`<store>.model/` or `out_dir`): what makes it one, which store it
belongs to, and what `--restart` removes from it.

`facesynth_model.json` ({"format": "facesynth-model", "store_id", "store_path"}) marks a
directory facesynth trains into. It names the store the checkpoints were trained on: a run
on another store (deleted and captured again, or another capture at the same path) is
refused rather than resuming, and re-exporting, weights of other data. On `--restart` (the
store was emptied and got a new id) the model starts over: only the files facesynth writes
there are removed (checkpoints/*.pt, previews/step_*.png and epoch_*.png, export/generator.*), never the
directory itself or anything else in it, and never a directory without the marker.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from facesynth.errors import ModelFileError
from facesynth.model.checkpoint import TMP_PREFIX

MARKER = "facesynth_model.json"
FORMAT = "facesynth-model"
OWN_FILES = {"checkpoints": ("*.pt", f"{TMP_PREFIX}*"),
             "previews": ("step_*.png", "epoch_*.png", f"{TMP_PREFIX}*"),
             "export": ("generator.pt", "generator.ts.pt", "generator.onnx", "generator.json", f"{TMP_PREFIX}*")}
WHAT_TO_DO = ("run again with --restart to train a new model for this store (it starts the store "
              "over too), or give the model another directory (nodes.<train>.params.out_dir)")


def read_model_marker(d: Path) -> dict | None:
    try:
        data = json.loads((d / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{d / MARKER} is damaged; if {d} is a facesynth model directory, "
                             "delete that file and run with --restart, or use another out_dir")
    return data


def _is_legacy_model_dir(d: Path) -> bool:
    """A model directory from before the marker: only checkpoints/, previews/, export/ in it."""
    names = {e.name for e in d.iterdir()}
    return bool(names) and names <= set(OWN_FILES) and (d / "checkpoints").is_dir()


def write_model_marker(d: Path, identity: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "store_id": identity.get("store_id"), "store_path": identity.get("path")}
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=d)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, d / MARKER)


def clear_model_files(d: Path) -> list[Path]:
    """Remove what facesynth wrote into the model directory; returns the files removed."""
    removed = []
    for sub, patterns in OWN_FILES.items():
        folder = d / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        for pattern in patterns:
            for f in folder.glob(pattern):
                if f.is_file() or f.is_symlink():
                    f.unlink()
                    removed.append(f)
    return removed


def prepare_model_dir(d: Path, identity: dict, restart: bool) -> str:
    """Make `d` this store's model directory; returns what was done ("new", "kept", "restarted").

    Raises ModelFileError when `d` is something else (not refused silently, nothing deleted) or
    belongs to another store and this is no --restart run.
    """
    if not d.exists() or (d.is_dir() and not any(d.iterdir())):
        write_model_marker(d, identity)
        return "new"
    if not d.is_dir():
        raise ModelFileError(f"model directory {d} is a file; set out_dir to a directory")
    marker = read_model_marker(d)
    if marker is None and not _is_legacy_model_dir(d):
        raise ModelFileError(f"{d} is not a facesynth model directory (no {MARKER}) and is not empty: "
                             "nothing there was used or deleted; set out_dir to a new directory")
    if marker is not None and marker.get("store_id") == identity.get("store_id"):
        return "kept"
    if restart:
        clear_model_files(d)
        write_model_marker(d, identity)
        return "restarted"
    if marker is None:  # a legacy directory: its checkpoints say which store, if any (checked at resume)
        write_model_marker(d, identity)
        return "kept"
    raise ModelFileError(f"model directory {d} was trained on another store (id {str(marker.get('store_id'))[:12]}, "
                         f"{marker.get('store_path')}), not on {identity.get('path')} (id "
                         f"{str(identity.get('store_id'))[:12]}): its weights would be resumed and exported as if "
                         f"new; {WHAT_TO_DO}")


def check_store_identity(saved_meta: dict, current: dict, what: str) -> None:
    """Refuse a checkpoint/export recorded from another store or other data (store/identity.py)."""
    from facesynth.store.identity import identity_mismatch

    problem = identity_mismatch(saved_meta.get("store_identity"), current)
    if problem:
        raise ModelFileError(f"{what} does not belong to this store: {problem}. Its weights were not "
                             f"used or exported; {WHAT_TO_DO}")
