"""Training checkpoints: state dicts + config + position (epoch, step), written atomically,
kept within a bound, and read back with a fallback when the newest one is damaged.

On disk (`<model dir>/checkpoints/`): `step_NNNNNNNN.pt` for the last `keep_last` saves (by
time and at the end, model/schedule.py; `epoch_NNNN.pt` from older facesynth is still read),
`latest.pt` (the newest: a save, or a stop), `best.pt` (the saved evaluation with the lowest
eval depth MAE). latest/best are copies of a step file of their own (a copy-on-write clone where
the filesystem makes them, else a real copy; never a hard link), so one damaged file costs at most
one save: the fallback finds the same step in the other file. Every file is written to a `.tmp-*` name, fsynced and renamed: a
crash or a full disk leaves the previous checkpoint intact and no temporary file behind.

Read with `torch.load(weights_only=True)`: a checkpoint file is never a way to run code.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from facesynth.errors import ModelFileError, ModelWriteError
from facesynth.input_files import InputFileError, check_regular, os_error_text

LATEST, BEST = "latest.pt", "best.pt"
BEST_METRIC = "depth_mae_mm"  # lower is better; the eval metric best.pt is chosen by
TMP_PREFIX = ".tmp-"
# a checkpoint holds G, its average, D and both optimisers' state: about 5 GB at 512 px, ngf 128
MAX_CHECKPOINT_BYTES = 16 << 30
_KEPT_RE = re.compile(r"^(epoch|step)_(\d+)\.pt$")  # epoch_NNNN.pt: saved by facesynth before issue 21
# config keys that must match for a checkpoint to continue a run; a checkpoint from before the
# later options was made with the original's choice, their default here
ARCH_KEYS = ("size", "ngf", "ndf", "n_layers_d", "num_d")
LATER_ARCH_DEFAULTS = {"upsample": "transpose", "norm": "batch"}


# ---- reading ---------------------------------------------------------------------------
def _torch_reason(exc: BaseException) -> str:
    """torch's error without its advice to load with weights_only=False (which runs code)."""
    text = str(exc)
    keep = [p.strip() for p in re.split(r"\n\s*\n", text)
            if p.strip() and "weights_only" not in p and "documentation" not in p.lower()]
    reason = " ".join(keep) or type(exc).__name__
    return reason[:300]


def safe_torch_load(path: str | Path, map_location: Any = "cpu", what: str = "checkpoint",
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> Any:
    """torch.load(weights_only=True) of a regular file of at most `max_bytes` (a link to /dev/zero
    or a 20 GB sparse file is refused from its metadata); a failure is a ModelFileError in
    facesynth's words."""
    p = Path(path)
    try:
        check_regular(p, max_bytes, what)
    except InputFileError as e:
        raise ModelFileError(f"{e}; facesynth did not read it") from None
    except OSError as e:
        raise ModelFileError(f"{p} is not a readable facesynth {what}: {os_error_text(e)}") from None
    try:
        with warnings.catch_warnings():  # torch's own notes on the file's pickle protocol
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle that asks for code
        raise ModelFileError(
            f"{p} is not a readable facesynth {what}: {_torch_reason(e)}. facesynth only loads "
            "tensors and plain data from model files, never code; if the file is damaged, "
            "delete it (an older checkpoint is used) or retrain") from None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint file (or a checkpoints directory's newest intact one)."""
    p = Path(path)
    if p.is_dir():
        state, _found, _skipped = Checkpoints(p).load_latest(map_location)
        if state is None:
            raise ModelFileError(f"no checkpoint in {p}")
        return state
    if not p.is_file():
        raise ModelFileError(f"no checkpoint at {p}")
    state = safe_torch_load(p, map_location)
    if not isinstance(state, dict):
        raise ModelFileError(f"{p} is not a facesynth checkpoint (not a dict)")
    for key in ("config", "epoch", "step", "G"):
        if key not in state:
            raise ModelFileError(f"{p} is not a facesynth checkpoint (no '{key}')")
    return state


def check_compatible(saved: dict, config: dict, path: str | Path) -> None:
    """A run may only continue from a checkpoint of the same architecture."""
    saved, config = {**LATER_ARCH_DEFAULTS, **saved}, {**LATER_ARCH_DEFAULTS, **config}
    diff = [f"{k}: checkpoint {saved.get(k)} vs now {config.get(k)}"
            for k in (*ARCH_KEYS, *LATER_ARCH_DEFAULTS) if saved.get(k) != config.get(k)]
    if diff:
        raise ModelFileError(f"checkpoint {path} belongs to a different model ({'; '.join(diff)}); "
                             "use another model directory (out_dir) or --restart")


# ---- writing ---------------------------------------------------------------------------
def _write(fh, data) -> int:
    """The low-level write every checkpoint byte goes through (a test makes it fail)."""
    return fh.write(data)


class _WriteTarget:
    """A binary file for torch.save that keeps the OSError a write raised: torch's zip writer
    turns it into a bare RuntimeError, and a full disk deserves its own message."""

    def __init__(self, path: Path):
        self.fh = open(path, "wb")
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return _write(self.fh, data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.fh.flush()


def write_failure(err: OSError) -> str:
    """Why a write failed, in words: a full disk (or quota) is named as such."""
    return "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or str(err))


def _write_error(target: Path, err: OSError, what: str = "checkpoint") -> ModelWriteError:
    why = write_failure(err)
    return ModelWriteError(f"could not write {target}: {why}. Nothing half-written was left and the "
                           f"previous {what} is intact: free some space and run again to continue from it")


def atomic_torch_save(obj: Any, target: str | Path, what: str = "checkpoint") -> Path:
    """torch.save to a temporary name, fsync, rename: `target` is the old file or the whole new one."""
    target = Path(target)
    tmp = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{target.name}")
    out = None
    try:
        out = _WriteTarget(tmp)
        with out.fh:
            torch.save(obj, out)
            out.fh.flush()
            os.fsync(out.fh.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        err = (out.error if out is not None else None) or (e if isinstance(e, OSError) else None)
        if err is not None:
            raise _write_error(target, err, what) from None
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int): a copy-on-write clone of a whole file


def _clone_or_copy(src: Path, dst: Path) -> None:
    """`dst` gets `src`'s bytes as a file of its own: a copy-on-write clone where the filesystem
    makes them (btrfs, XFS, ...: no extra space until one is changed), else a real copy."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _copy(src: Path, dst: Path) -> None:
    """Make `dst` an independent copy of `src` (never a hard link: damage to one file must not be
    damage to both, so one damaged checkpoint costs at most one epoch), atomically."""
    tmp = dst.with_name(f"{TMP_PREFIX}{os.getpid()}-copy-{dst.name}")
    tmp.unlink(missing_ok=True)
    try:
        _clone_or_copy(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(dst, e) from None


def kept_order(path: Path) -> tuple[int, int] | None:
    """Sort key of a kept checkpoint file (older epoch_ files before step_ files), None for others."""
    m = _KEPT_RE.match(path.name)
    return (int(m.group(1) == "step"), int(m.group(2))) if m else None


class Checkpoints:
    """The checkpoints directory of one model: save with retention, load with fallback.

    `verify(state, path)` (optional) is called on the checkpoint about to be resumed from and
    may raise (e.g. it was trained on another store): that is an error, not a fallback.
    """

    def __init__(self, directory: str | Path, keep_last: int = 2,
                 verify: Callable[[dict, Path], None] | None = None):
        self.dir = Path(directory)
        self.keep_last = max(1, int(keep_last))
        self.verify = verify

    def kept_files(self) -> list[Path]:
        """step_NNNNNNNN.pt (and older epoch_NNNN.pt) files, oldest first."""
        if not self.dir.is_dir():
            return []
        files = [p for p in self.dir.iterdir() if kept_order(p) is not None]
        return sorted(files, key=kept_order)

    def remove_temporaries(self) -> None:
        """Left by a process killed mid-save (one run per store, so none is being written now)."""
        if self.dir.is_dir():
            for p in self.dir.glob(f"{TMP_PREFIX}*"):
                p.unlink(missing_ok=True)

    def save(self, state: dict, keep: bool) -> Path:
        """Write `state`: a kept step file + latest (+ best), or latest alone (a stop)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not keep:
            return atomic_torch_save(state, self.dir / LATEST)
        target = atomic_torch_save(state, self.dir / f"step_{int(state['step']):08d}.pt")
        _copy(target, self.dir / LATEST)
        if self._is_best(state):
            _copy(target, self.dir / BEST)
        self._prune()
        return target

    @staticmethod
    def _is_best(state: dict) -> bool:
        """Whether the newest history entry evaluated this state and has the lowest eval metric so
        far (ties: the older)."""
        history = state.get("history", [])
        if history and history[-1].get("step", state.get("step")) != state.get("step"):
            return False  # trained on since that evaluation
        values = [h.get("eval", {}).get(BEST_METRIC) for h in history]
        if not values or values[-1] is None:
            return False
        earlier = [v for v in values[:-1] if v is not None]
        return not earlier or float(values[-1]) < min(float(v) for v in earlier)

    def _prune(self) -> None:
        for old in self.kept_files()[:-self.keep_last]:
            old.unlink(missing_ok=True)  # latest/best are copies of their own: they stay

    def candidates(self) -> list[Path]:
        """Where a resume looks, newest first: latest, the epoch files, best."""
        out = [self.dir / LATEST, *reversed(self.kept_files()), self.dir / BEST]
        return [p for p in out if p.is_file()]

    def load_latest(self, map_location: Any = "cpu") -> tuple[dict | None, Path | None, list[tuple[Path, str]]]:
        """(state, its file, [(damaged file, why)]) of the newest intact checkpoint.

        (None, None, []) when there is none at all; a ModelFileError when every one is damaged.
        """
        self.remove_temporaries()
        skipped: list[tuple[Path, str]] = []
        for p in self.candidates():
            try:
                state = load_checkpoint(p, map_location)
            except ModelFileError as e:
                skipped.append((p, str(e)))
                continue
            if self.verify is not None:
                self.verify(state, p)
            return state, p, skipped
        if skipped:
            raise ModelFileError(f"every checkpoint in {self.dir} is damaged ({skipped[0][1]}); "
                                 "start the model over with --restart")
        return None, None, []
