"""Realistic hole shapes for measuring depth filling: remove known valid pixels, fill, compare.

Real depth sensors lose pixels in blobs (dark or shiny surfaces), along depth edges
(occlusion shadows, flying pixels), in thin stripes (structured-light bands), and in the
particular patterns of other frames. Each generator returns a bool mask of pixels to
remove; `make_holes` combines them until a target share of the valid pixels is removed,
never touching pixels that were already holes or that lie within `margin` of the border.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

KINDS = ("blobs", "edges", "stripes", "copied")


def blobs(shape: tuple[int, int], rng: np.random.Generator, count: int = 4,
          radius: tuple[int, int] = (3, 12)) -> np.ndarray:
    """Irregular blobs: thresholded smooth noise around random centres."""
    h, w = shape
    out = np.zeros(shape, np.uint8)
    for _ in range(count):
        r = int(rng.integers(radius[0], radius[1] + 1))
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        axes = (max(1, int(r * rng.uniform(0.6, 1.4))), max(1, int(r * rng.uniform(0.6, 1.4))))
        cv2.ellipse(out, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 2.0)
    ragged = cv2.GaussianBlur(out.astype(np.float32), (0, 0), 1.5) + (noise - noise.mean()) * 4.0
    return ragged > 0.5


def depth_edges(depth: np.ndarray, rng: np.random.Generator, jump_mm: float = 40.0,
                width: int = 2, keep: float = 0.5) -> np.ndarray:
    """Dropouts along depth discontinuities (occlusion shadows), in random runs along the edge."""
    d = depth.astype(np.float32)
    valid = depth > 0
    k = np.ones((3, 3), np.uint8)
    dmax = cv2.dilate(np.where(valid, d, 0), k)
    dmin = -cv2.dilate(np.where(valid, -d, -65535.0), k)
    edge = valid & ((dmax - dmin) > jump_mm)
    # keep edge pixels in runs: a coarse random field decides which parts of the edge drop out
    coarse = rng.random((max(1, depth.shape[0] // 16), max(1, depth.shape[1] // 16))).astype(np.float32)
    field = cv2.resize(coarse, depth.shape[::-1], interpolation=cv2.INTER_LINEAR) < keep
    edge &= field
    return cv2.dilate(edge.astype(np.uint8), np.ones((width, width), np.uint8)) > 0


def stripes(shape: tuple[int, int], rng: np.random.Generator, count: int = 3,
            width: tuple[int, int] = (1, 3), length: tuple[int, int] = (10, 40)) -> np.ndarray:
    """Short thin bands at random angles (structured-light and rolling-shutter dropouts)."""
    h, w = shape
    out = np.zeros(shape, np.uint8)
    for _ in range(count):
        cy, cx = float(rng.integers(0, h)), float(rng.integers(0, w))
        ang = rng.uniform(0, np.pi)
        half = rng.integers(length[0], length[1] + 1) / 2.0
        p0 = (int(cx - half * np.cos(ang)), int(cy - half * np.sin(ang)))
        p1 = (int(cx + half * np.cos(ang)), int(cy + half * np.sin(ang)))
        cv2.line(out, p0, p1, 1, int(rng.integers(width[0], width[1] + 1)))
    return out > 0


def copied(shape: tuple[int, int], rng: np.random.Generator, donors: Sequence[np.ndarray],
           max_px: int | None = None) -> np.ndarray:
    """Real hole masks of other frames, one connected component at a time, shifted to random places.

    Components larger than `max_px` are skipped (e.g. the Kinect's field-of-view border).
    """
    h, w = shape
    out = np.zeros(shape, bool)
    if not donors:
        return out
    donor = np.asarray(donors[int(rng.integers(len(donors)))], bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(donor.astype(np.uint8), connectivity=8)
    cands = [i for i in range(1, n) if 4 <= stats[i, cv2.CC_STAT_AREA] <= (max_px or h * w // 50)]
    if not cands:
        return out
    i = int(rng.choice(cands))
    x, y, bw, bh = (int(v) for v in stats[i, :4])
    piece = labels[y:y + bh, x:x + bw] == i
    bh, bw = min(bh, h), min(bw, w)
    piece = piece[:bh, :bw]
    oy, ox = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    out[oy:oy + bh, ox:ox + bw] = piece
    return out


def make_holes(depth: np.ndarray, fraction: float = 0.03, seed: int = 0,
               kinds: Sequence[str] = KINDS, donors: Sequence[np.ndarray] = (),
               margin: int = 16, allowed: np.ndarray | None = None) -> np.ndarray:
    """Pixels to remove: about `fraction` of the valid (and `allowed`) pixels, in realistic shapes.

    Only valid pixels at least `margin` px from the border are ever chosen, so every removed
    pixel has a known true depth and every method (patch-based ones need a border) can fill it.
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown hole kinds {bad}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    shape = depth.shape
    usable = depth > 0
    if allowed is not None:
        usable &= np.asarray(allowed, bool)
    if margin > 0:
        inner = np.zeros(shape, bool)
        inner[margin:-margin, margin:-margin] = True
        usable &= inner
    target = int(fraction * usable.sum())
    scale = max(1.0, min(shape) / 256.0)
    removed = np.zeros(shape, bool)
    for _ in range(200):
        if removed.sum() >= target:
            break
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "blobs":
            m = blobs(shape, rng, count=1, radius=(int(3 * scale), int(12 * scale)))
        elif kind == "edges":
            m = depth_edges(depth, rng, width=2, keep=0.3)
            win = np.zeros(shape, bool)  # one stretch of edge at a time, not every edge at once
            s = int(48 * scale)
            wy, wx = int(rng.integers(0, max(1, shape[0] - s))), int(rng.integers(0, max(1, shape[1] - s)))
            win[wy:wy + s, wx:wx + s] = True
            m &= win
        elif kind == "stripes":
            m = stripes(shape, rng, count=1, length=(int(10 * scale), int(40 * scale)))
        else:
            m = copied(shape, rng, donors)
        m &= usable & ~removed
        room = target - int(removed.sum())
        if m.sum() > 2 * room and room > 0:
            continue  # one shape would overshoot the target by far: try a smaller one
        removed |= m
    return removed
