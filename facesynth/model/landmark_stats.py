"""The training set's landmark statistics, shipped in generator.json as `landmark_stats`.

Live input comes from other cameras and other people. To condition it like the training drawings,
live inference needs the trained person's landmarks in network pixels: their mean shape (the
reference that live landmarks are aligned to), a neutral shape (mouth closed: what a driver's
calibrated neutral is mapped onto) and the per-point range seen in training (for the clamp that
keeps the generator out of expressions it never saw). See facesynth/live/conditioning.py.
"""
from __future__ import annotations

import numpy as np

# iBUG-68 indices: inner-lip pairs (upper, lower) and the outer eye corners (docs/landmarks.md)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
OUTER_EYE_CORNERS = (36, 45)
NEUTRAL_QUANTILE = 0.2  # frames with the least open mouth (this share of them) make the neutral


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """(N, 70, 2) -> (N,) inner-lip gap / outer eye-corner distance (scale-free; 0 = lips closed)."""
    p = np.asarray(points, np.float64)
    gap = np.mean([np.linalg.norm(p[:, a] - p[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)
    eyes = np.linalg.norm(p[:, OUTER_EYE_CORNERS[0]] - p[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return gap / np.maximum(eyes, 1e-6)


def landmark_stats(points: np.ndarray, size: int) -> dict:
    """Mean, neutral, lo, hi ((70, 2) lists, network px) of training landmarks (N, 70, 2) at `size`."""
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[1:] != (70, 2) or not len(p):
        raise ValueError(f"expected (N, 70, 2) training landmarks, got {p.shape}")
    p = p[np.isfinite(p).all(axis=(1, 2))]
    if not len(p):
        raise ValueError("no finite training landmarks")
    opening = mouth_opening(p)
    neutral = p[opening <= np.quantile(opening, NEUTRAL_QUANTILE)]

    def js(a: np.ndarray) -> list:
        return np.round(a, 3).tolist()

    return {"size": int(size), "frames": int(len(p)), "neutral_frames": int(len(neutral)),
            "mean": js(p.mean(0)), "neutral": js(neutral.mean(0)), "lo": js(p.min(0)), "hi": js(p.max(0)),
            "neutral_mouth_opening": round(float(np.median(opening[opening <= np.quantile(opening, NEUTRAL_QUANTILE)])), 4)}


def store_landmarks(store, frames: np.ndarray, size: int) -> np.ndarray:
    """crop/landmarks of `frames` scaled from the crop size to the network size (as the drawings are)."""
    crop_size = int(store.array("crop/color").shape[1])
    pts = np.asarray(store.read("crop/landmarks"), np.float32)
    return pts[np.asarray(frames, int)] * np.float32(size / crop_size)
