"""Training checkpoints: state dicts + config + position (epoch, step) written atomically.

Loaded with `torch.load(weights_only=True)`: a checkpoint file is never a way to run code.
`latest.pt` always names the newest one, so an interrupted run continues from it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from facesynth.errors import InputDataError

LATEST = "latest.pt"
# config keys that must match for a checkpoint to continue a run
ARCH_KEYS = ("size", "ngf", "ndf", "n_layers_d", "num_d")


def save_checkpoint(directory: str | Path, state: dict, epoch_file: bool = True) -> Path:
    """Write `state` as latest.pt (and epoch_NNNN.pt at epoch ends); returns the file written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".tmp-{os.getpid()}.pt"
    torch.save(state, tmp)
    target = d / (f"epoch_{int(state['epoch']):04d}.pt" if epoch_file else LATEST)
    os.replace(tmp, target)
    if epoch_file:
        tmp2 = d / f".tmp-{os.getpid()}-latest.pt"
        torch.save(state, tmp2)
        os.replace(tmp2, d / LATEST)
    return target


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint (weights_only, so untrusted files cannot execute anything)."""
    p = Path(path)
    if p.is_dir():
        p = p / LATEST
    if not p.is_file():
        raise InputDataError(f"no checkpoint at {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt or foreign file
        raise InputDataError(f"{p} is not a readable facesynth checkpoint: {e}") from None
    for key in ("config", "epoch", "step", "G"):
        if key not in state:
            raise InputDataError(f"{p} is not a facesynth checkpoint (no '{key}')")
    return state


def check_compatible(saved: dict, config: dict, path: str | Path) -> None:
    """A run may only continue from a checkpoint of the same architecture."""
    diff = [f"{k}: checkpoint {saved.get(k)} vs now {config.get(k)}"
            for k in ARCH_KEYS if saved.get(k) != config.get(k)]
    if diff:
        raise InputDataError(f"checkpoint {path} belongs to a different model ({'; '.join(diff)}); "
                             "use another run directory or restart the run")
