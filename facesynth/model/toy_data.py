"""A small parametric 'face' dataset written into a real FrameStore (tests, benchmarks).

Each frame is an ellipsoid head whose position, size and mouth opening vary; the 70
landmarks, colour, depth (mm) and mask all follow from the same parameters, so the drawing
really determines the RGBD target and a model can learn the mapping at a tiny size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

D0_MM = 600.0
FACE_DEPTH_MM = 80.0


def toy_landmarks(cx: float, cy: float, r: float, mouth: float) -> np.ndarray:
    """70 points in the iBUG-68 + pupils layout for a head at (cx, cy) of radius r."""
    pts = []
    a = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)                      # jaw 0-16
    pts += [(cx - r * np.cos(t), cy + r * 0.2 + r * 0.75 * np.sin(t)) for t in a]
    for xs in (np.linspace(-0.65, -0.15, 5), np.linspace(0.15, 0.65, 5)):  # brows 17-26
        pts += [(cx + x * r, cy - 0.38 * r - 0.06 * r * np.sin(np.pi * (abs(x) - 0.15) / 0.5)) for x in xs]
    pts += [(cx, cy - (0.25 - 0.1 * k) * r) for k in range(4)]            # nose bridge 27-30
    pts += [(cx + (k - 2) * 0.08 * r, cy + 0.2 * r) for k in range(5)]    # lower nose 31-35
    eyes = []
    for ex in (-0.35, 0.35):                                              # eyes 36-47
        for t in np.linspace(0, 2 * np.pi, 6, endpoint=False):
            eyes.append((cx + ex * r - 0.13 * r * np.cos(t), cy - 0.2 * r + 0.05 * r * np.sin(t)))
    pts += eyes
    my, mw, mh = cy + 0.45 * r, 0.3 * r, 0.04 * r + mouth * 0.15 * r
    pts += [(cx - mw * np.cos(t), my + (mh + 0.03 * r) * np.sin(t))       # outer lip 48-59
            for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    pts += [(cx - 0.7 * mw * np.cos(t), my + mh * np.sin(t))              # inner lip 60-67
            for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    pts += [(cx - 0.35 * r, cy - 0.2 * r), (cx + 0.35 * r, cy - 0.2 * r)]  # pupils 68-69
    out = np.asarray(pts, np.float32)
    assert out.shape == (70, 2)
    return out


def toy_frame(size: int, cx: float, cy: float, r: float, mouth: float):
    """(colour u8 (S,S,3), depth u16 mm (S,S), mask bool (S,S), landmarks (70,2))."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    nx, ny = (xx - cx) / (0.8 * r), (yy - cy) / r
    rr = nx ** 2 + ny ** 2
    mask = rr < 1.0
    bump = np.sqrt(np.clip(1.0 - rr, 0, 1))
    depth = np.where(mask, D0_MM + 70.0 * (1.0 - bump), 0).astype(np.uint16)
    color = np.zeros((size, size, 3), np.uint8)
    shade = (0.55 + 0.45 * bump)[..., None]
    color[:] = np.where(mask[..., None], np.array([220, 170, 140]) * shade, 0).astype(np.uint8)
    lm = toy_landmarks(cx, cy, r, mouth)
    my, mw, mh = cy + 0.45 * r, 0.3 * r, 0.04 * r + mouth * 0.15 * r
    lips = ((xx - cx) / mw) ** 2 + ((yy - my) / (mh + 0.03 * r)) ** 2 < 1.0
    color[lips & mask] = (150, 40, 50)
    for ex in (-0.35, 0.35):
        eye = ((xx - cx - ex * r) / (0.13 * r)) ** 2 + ((yy - cy + 0.2 * r) / (0.05 * r)) ** 2 < 1.0
        color[eye & mask] = (40, 30, 30)
    return color, depth, mask, lm


def write_toy_store(path: str | Path, n_train: int = 24, n_eval: int = 8, size: int = 64,
                    seed: int = 0, chunk_frames: int = 8):
    """Write raw/split + crop/{color,depth,mask,landmarks,ok} and `normalisation`; returns the store."""
    from facesynth.store.frame_store import FrameStore

    rng = np.random.default_rng(seed)
    n = n_train + n_eval
    store = FrameStore.create(path, chunk_frames=chunk_frames, attrs={
        "normalisation": {"d0_mm": D0_MM, "face_depth_mm": FACE_DEPTH_MM, "near_mm": 20.0, "size": size},
        "intrinsics": {"fx": 500.0, "fy": 500.0, "cx": size / 2, "cy": size / 2, "width": size, "height": size}})
    cols, deps, masks, lms = [], [], [], []
    for _ in range(n):
        c, d, m, lm = toy_frame(size, size * rng.uniform(0.42, 0.58), size * rng.uniform(0.42, 0.58),
                                size * rng.uniform(0.3, 0.4), rng.uniform(0, 1))
        cols.append(c), deps.append(d), masks.append(m), lms.append(lm)
    split = np.zeros(n, np.uint8)
    split[n_train:] = 1
    arrays = {"crop/color": (np.stack(cols), (size, size, 3), np.uint8),
              "crop/depth": (np.stack(deps), (size, size), np.uint16),
              "crop/mask": (np.stack(masks), (size, size), bool),
              "crop/landmarks": (np.stack(lms), (70, 2), np.float32),
              "crop/ok": (np.ones(n, bool), (), bool),
              "raw/split": (split, (), np.uint8)}
    for name, (data, shape, dtype) in arrays.items():
        store.ensure_array(name, n, shape, dtype)
        store.write(name, 0, data)
    return store
