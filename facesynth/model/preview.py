"""Per-epoch preview grid: one row per sample, columns drawing | predicted colour |
predicted depth | true colour | true depth (PNG), so progress can be judged by eye."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch


def _u8(t: torch.Tensor) -> np.ndarray:
    """(C,H,W) in [-1,1] -> (H,W,3) uint8 RGB (one channel repeated)."""
    a = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().numpy()
    a = a.transpose(1, 2, 0)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def preview_grid(x: torch.Tensor, pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(B,1,S,S) drawings, (B,4,S,S) predictions and targets -> (B*S, 5*S, 3) RGB uint8."""
    rows = []
    for i in range(x.shape[0]):
        cols = [_u8(x[i]), _u8(pred[i, :3]), _u8(pred[i, 3:]), _u8(y[i, :3]), _u8(y[i, 3:])]
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


def write_preview(path: str | Path, x, pred, y) -> Path:
    """Encode in memory, write under a temporary name, rename: a full disk leaves no torn PNG."""
    from facesynth.errors import ModelWriteError
    from facesynth.model.checkpoint import write_failure

    p = Path(path)
    grid = preview_grid(x, pred, y)
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ModelWriteError(f"could not encode the preview {p} as PNG")
    tmp = p.with_name(f".tmp-{p.name}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(png.tobytes())
        os.replace(tmp, p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelWriteError(f"could not write the preview {p}: {write_failure(e)}; free some space and run again "
                              "(training continues from the last checkpoint)") from None
    return p
