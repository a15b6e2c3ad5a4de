"""Conditioning live landmarks like the training drawings: align, retarget, clamp, filter.

The generator only ever saw the trained person's face at one fixed metric scale (face.crop), so
live landmarks from another camera or another person must be brought into that frame first:

- align: a similarity transform (Umeyama 1991: scale, rotation, shift) fitted on the *stable*
  points only (eye corners and nose bridge, which expressions barely move) onto the trained mean
  shape, then applied to all 70 points. Opening the mouth moves the lips and jaw, not the fit,
  so expression never changes the face's scale (a per-frame bounding box would).
- retarget: the driver's neutral (the mean of its first aligned frames, or after a `calibrate`
  message) is subtracted and the trained person's neutral added: the driver's motion, the trained
  person's face shape (the Facial Landmark Controller of UCP-Framework did the same).
- clamp: each coordinate kept within the range seen in training (out-of-range expressions are
  what make the generator draw uncanny artefacts).
- filter: a One Euro filter (Casiez, Roussel, Vogel, CHI 2012) per coordinate: a low-pass whose
  cutoff rises with speed, so a still face stops jittering while fast motion keeps little lag.

Pure numpy; the node adapter is live/condition_nodes.py; the statistics come from
facesynth/model/landmark_stats.py via generator.json.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facesynth.errors import InputDataError

# iBUG-68 indices (docs/landmarks.md): nose bridge 27-30 and the four eye corners
STABLE_POINTS = (27, 28, 29, 30, 36, 39, 42, 45)


# ---- similarity alignment ------------------------------------------------------------------
def fit_similarity(src: np.ndarray, dst: np.ndarray, rotation: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares (scale, R (2, 2), t (2,)) with dst ~ scale * R @ src + t (Umeyama 1991).

    Without `rotation` only scale and shift are fitted (R = identity).
    """
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = s.mean(0), d.mean(0)
    xs, xd = s - mu_s, d - mu_d
    var_s = float((xs ** 2).sum()) / len(s)
    if var_s < 1e-12:
        raise InputDataError("stable landmarks coincide: cannot fit a similarity transform")
    if rotation:
        cov = xd.T @ xs / len(s)
        u, sing, vt = np.linalg.svd(cov)
        sign = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
        r = u @ sign @ vt
        scale = float(np.trace(np.diag(sing) @ sign)) / var_s
    else:
        r = np.eye(2)
        scale = float((xs * xd).sum()) / float((xs ** 2).sum())
    return scale, r, mu_d - scale * (r @ mu_s)


def apply_similarity(points: np.ndarray, scale: float, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (scale * (np.asarray(points, np.float64) @ r.T) + t).astype(np.float32)


def align_to(points: np.ndarray, reference: np.ndarray, stable=STABLE_POINTS, rotation: bool = True) -> np.ndarray:
    """(70, 2) points mapped by the similarity that best fits their stable points onto `reference`'s."""
    idx = list(stable)
    scale, r, t = fit_similarity(np.asarray(points)[idx], np.asarray(reference)[idx], rotation)
    return apply_similarity(points, scale, r, t)


# canonical geometry for a source without a model (live.face_landmarks): measured on the four
# hand-annotated iBUG faces (face/testdata_ibug.py) - the 68 points' larger extent is this many
# times the stable points' RMS radius, and their box centre lies this far below the stable centroid
EXTENT_PER_STABLE_RMS = 5.8   # 5.1-7.0 over the four faces (median)
CENTRE_BELOW_STABLE_RMS = 1.25  # 1.18-1.35


def frame_to_network_px(points70: np.ndarray, size: int, margin: float = 1.7) -> np.ndarray:
    """Frame px -> network px at a scale set by the stable points only (expression-independent).

    The crop square is `margin` x the face's typical extent, estimated from the stable points'
    RMS radius, centred where the 68 points' box centre typically lies.
    """
    p = np.asarray(points70, np.float64)
    st = p[list(STABLE_POINTS)]
    centroid = st.mean(0)
    rms = max(1e-6, float(np.sqrt(((st - centroid) ** 2).sum(1).mean())))
    side = margin * EXTENT_PER_STABLE_RMS * rms
    centre = centroid + np.array([0.0, CENTRE_BELOW_STABLE_RMS * rms])
    return ((p - centre + side / 2.0) * (size / side)).astype(np.float32)


# ---- the trained person's statistics -------------------------------------------------------
@dataclass
class TrainedLandmarks:
    """generator.json `landmark_stats` as arrays, in the model's network px."""

    mean: np.ndarray
    neutral: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    size: int

    @classmethod
    def from_meta(cls, meta: dict, size: int | None = None) -> "TrainedLandmarks":
        st = meta.get("landmark_stats")
        if not st:
            raise InputDataError("the model's generator.json has no landmark_stats (exported before they "
                                 "existed): retrain or re-export it with this version, or turn align, "
                                 "retarget and clamp off")
        k = float(size) / float(st["size"]) if size else 1.0
        arr = {n: np.asarray(st[n], np.float64).reshape(70, 2) * k for n in ("mean", "neutral", "lo", "hi")}
        return cls(size=int(size or st["size"]), **arr)


def retarget(aligned: np.ndarray, driver_neutral: np.ndarray, trained_neutral: np.ndarray) -> np.ndarray:
    """The driver's motion away from its own neutral, applied to the trained person's neutral."""
    return (np.asarray(trained_neutral, np.float64) + (np.asarray(aligned, np.float64)
                                                       - np.asarray(driver_neutral, np.float64))).astype(np.float32)


def clamp_to_range(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float = 0.0) -> tuple[np.ndarray, int]:
    """Points clipped per coordinate to [lo, hi] widened by `margin` x the range; (points, values clipped)."""
    pad = margin * (np.asarray(hi) - np.asarray(lo))
    lo2, hi2 = np.asarray(lo) - pad, np.asarray(hi) + pad
    p = np.asarray(points, np.float64)
    out = np.clip(p, lo2, hi2)
    return out.astype(np.float32), int(np.count_nonzero(out != p))


# ---- One Euro filter -----------------------------------------------------------------------
def _alpha(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over arrays (every element filtered independently), timestamps in seconds."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or t <= self._t:
            first = self._x is None or self._x.shape != x.shape
            if first:
                self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
                return x.astype(np.float32)
            t = self._t + 1e-3  # repeated or backwards timestamps: treat as 1 ms apart
        dt = t - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.astype(np.float32)


# ---- everything together, as the node runs it -------------------------------------------------
@dataclass
class ConditionConfig:
    align: bool = True
    rotation: bool = True
    retarget: bool = False
    calibrate_frames: int = 30
    clamp: bool = False
    clamp_margin: float = 0.0
    filter: bool = False
    min_cutoff: float = 1.0
    beta: float = 0.2
    d_cutoff: float = 1.0


class Conditioner:
    """Stateful per-stream conditioning: align -> filter -> retarget (after calibration) -> clamp."""

    def __init__(self, trained: TrainedLandmarks | None, cfg: ConditionConfig):
        if trained is None and (cfg.align or cfg.retarget or cfg.clamp):
            raise InputDataError("align, retarget and clamp need the model's landmark_stats")
        self.trained, self.cfg = trained, cfg
        self.filter = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff) if cfg.filter else None
        self.clipped = 0
        self.calibrate()

    def calibrate(self) -> None:
        """Start (again) collecting the driver's neutral from the next `calibrate_frames` frames."""
        self._calib: list[np.ndarray] = []
        self.driver_neutral: np.ndarray | None = None

    @property
    def calibrating(self) -> bool:
        return self.cfg.retarget and self.driver_neutral is None

    def __call__(self, points: np.ndarray, t: float) -> np.ndarray:
        cfg, tr = self.cfg, self.trained
        p = np.asarray(points, np.float32)
        if cfg.align:
            p = align_to(p, tr.mean, rotation=cfg.rotation)
        if self.filter is not None:
            p = self.filter(p, t)
        if cfg.retarget:
            if self.driver_neutral is None:
                self._calib.append(p.astype(np.float64))
                if len(self._calib) >= cfg.calibrate_frames:
                    self.driver_neutral = np.mean(self._calib, axis=0)
                    self._calib = []
                p = tr.neutral.astype(np.float32)  # hold the trained neutral while calibrating
            else:
                p = retarget(p, self.driver_neutral, tr.neutral)
        if cfg.clamp:
            p, n = clamp_to_range(p, tr.lo, tr.hi, cfg.clamp_margin)
            self.clipped += n
        return p
