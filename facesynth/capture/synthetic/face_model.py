"""The procedural face behind the synthetic camera: a height map in head coordinates.

Head frame (mm): origin at the head centre, x to the image right, y down, z away from the
camera, so the visible surface is z = S(x, y) < 0. A static base (skull, face outline, neck,
nose, eye sockets, skin and hair texture) is built once per identity; each frame applies the
expression (face_features.frame_maps): the jaw opening tears the map along the
mouth line and moves the lower face down, and lips, mouth opening, eyes and brows are drawn
*from the 70 landmarks*, so the rendered colour and depth follow the landmarks exactly.
Landmark layout: iBUG 68 (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lip 48-59,
inner lip 60-67) + pupil 68 (in eye 36-41, image left) and pupil 69 (in eye 42-47).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

TEXEL_MM = 0.75                 # height/texture map resolution
X_MIN, X_MAX = -96.0, 96.0      # map extent in head coordinates (mm)
Y_MIN, Y_MAX = -135.0, 300.0
MOUTH_Y = 58.0                  # the closed-mouth line the jaw opens along
JAW_DROP_MM = 22.0              # chin travel at jaw_open = 1
_FADE_Y = (140.0, 175.0)        # the jaw's pull on the neck fades out over these heights
_SHIFT = 4                      # cv2 sub-pixel bits for drawing
_BALL = 1 << _SHIFT


@dataclass(frozen=True)
class FaceParams:
    """One frame's expression and head pose. Expression values are in [0, 1] unless noted."""

    jaw_open: float = 0.0
    smile: float = 0.0
    blink: float = 0.0
    brows: float = 0.0          # -1 frown .. 1 raised
    gaze_x: float = 0.0         # -1 .. 1 (image left .. right)
    gaze_y: float = 0.0         # -1 .. 1 (up .. down)
    yaw: float = 0.0            # degrees, + turns the face to the image right
    pitch: float = 0.0          # degrees, + tilts the chin down
    roll: float = 0.0           # degrees, + rotates clockwise in the image
    tx: float = 0.0             # head offset from the default placement (mm, camera frame)
    ty: float = 0.0
    tz: float = 0.0
    noise_seed: int = 0         # sensor noise and depth holes of this frame


def smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float32) - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, y: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((x / sx) ** 2 + (y / sy) ** 2)).astype(np.float32)


# ---- the neutral 70 landmarks (head-plane x, y in mm) -----------------------------------
_JAW_Y = np.array([-8.0, 8, 24, 40, 55, 69, 81, 92, 103])


def outline_half_width(y: np.ndarray) -> np.ndarray:
    """Half width of the face/skull outline at height y (an egg narrowing to the chin)."""
    y = np.asarray(y, dtype=np.float32)
    e = np.sqrt(np.clip(1.0 - ((y + 10.0) / 122.0) ** 2, 0.0, None))
    return (80.0 * e * (1.0 - 0.12 * smoothstep(10.0, 100.0, y))).astype(np.float32)


def _neutral_landmarks() -> np.ndarray:
    pts = np.zeros((70, 2), np.float32)
    inset = np.array([0.84, 0.84, 0.84, 0.84, 0.83, 0.80, 0.76, 0.70, 0.0], np.float32)  # visible under +/-8 deg
    jx = -inset * outline_half_width(_JAW_Y)
    jx[-1] = 0.0
    pts[0:9, 0], pts[0:9, 1] = jx, _JAW_Y
    pts[9:17, 0], pts[9:17, 1] = -jx[7::-1], _JAW_Y[7::-1]
    brow = np.array([[-52, -30], [-44, -36], [-35, -38.5], [-25, -37.5], [-14, -33]], np.float32)
    pts[17:22] = brow
    pts[22:27] = brow[::-1] * [-1, 1]
    pts[27:31] = [[0, -17], [0, -3], [0, 12], [0, 27]]
    pts[31:36] = [[-15, 36], [-8, 38.5], [0, 39.5], [8, 38.5], [15, 36]]
    eye = np.array([[-46, -14], [-38, -19.5], [-27, -19.5], [-18, -13], [-27, -9.5], [-38, -9.5]], np.float32)
    pts[36:42] = eye
    pts[42:48] = eye[[3, 2, 1, 0, 5, 4]] * [-1, 1]
    pts[48:60] = [[-25, 58], [-17, 52], [-7, 49.5], [0, 51], [7, 49.5], [17, 52], [25, 58],
                  [17, 64], [8, 67.5], [0, 68], [-8, 67.5], [-17, 64]]
    pts[60:68] = [[-21, 58], [-10, 57.6], [0, 57.8], [10, 57.6], [21, 58], [10, 58.4], [0, 58.3], [-10, 58.4]]
    pts[68] = eye.mean(axis=0)
    pts[69] = pts[42:48].mean(axis=0)
    return pts


NEUTRAL = _neutral_landmarks()
_UPPER_LIDS = [37, 38, 43, 44]
_LOWER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}
_CORNERS = [48, 54, 60, 64]
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


# ---- the jaw: a tear along the mouth line, the lower face moves down ------------------
def _jaw_weight(x: np.ndarray, y: np.ndarray, drop: float) -> np.ndarray:
    """v(x, y_out) of the backward map y_in = y_out - drop * v; non-decreasing in y, slope <= 1/drop."""
    g = 1.0 - smoothstep(20.0, 42.0, np.abs(x))
    tear = np.clip((y - MOUTH_Y) / max(drop, 1e-3), 0.0, 1.0)
    fade = 1.0 - smoothstep(_FADE_Y[0], _FADE_Y[1], y)   # the neck below the chin stays put
    return (g * tear + (1.0 - g) * smoothstep(-5.0, 110.0, y)) * fade


def jaw_forward(x: np.ndarray, y: np.ndarray, drop: float) -> np.ndarray:
    """Where a head-plane point (x, y) of the closed face goes when the jaw drops `drop` mm."""
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if drop < 1e-3 or x.size == 0:
        return y.copy()
    # y_out - drop * v(x, y_out) is non-decreasing in y_out: find where it passes y on [y, y + drop]
    t = np.linspace(0.0, 1.0, 257, dtype=np.float32)[None, :]
    cand = y[:, None] + drop * t
    back = cand - drop * _jaw_weight(x[:, None], cand, drop)
    i = np.clip((back < y[:, None]).sum(axis=1), 1, 256)
    rows = np.arange(len(y))
    b0, b1 = back[rows, i - 1], back[rows, i]
    f = np.where(b1 > b0, (y - b0) / np.maximum(b1 - b0, 1e-9), 0.5)
    return cand[rows, i - 1] + np.clip(f, 0, 1) * (cand[rows, i] - cand[rows, i - 1])


def expression_landmarks(p: FaceParams) -> np.ndarray:
    """The 70 landmarks in the head plane (x, y mm) for an expression (pose not applied)."""
    pts = NEUTRAL.copy()
    s, k, b = float(np.clip(p.smile, 0, 1)), float(np.clip(p.blink, 0, 1)), float(np.clip(p.brows, -1, 1))
    # smile: corners out and up, their neighbours half way
    for left, right, w in ((48, 54, 1.0), (60, 64, 0.9), (49, 53, 0.35), (59, 55, 0.45),
                           (61, 63, 0.4), (67, 65, 0.4), (50, 52, 0.1)):
        pts[left] += [-6.0 * s * w, -5.0 * s * w]
        pts[right] += [6.0 * s * w, -5.0 * s * w]
    pts[51, 1] -= 1.0 * s
    # brows: raised moves up, a frown lowers and pulls the inner ends together
    up = 7.0 * b if b > 0 else 4.0 * b
    pts[17:27, 1] -= up
    if b < 0:
        pts[[20, 21], 0] -= 3.0 * b
        pts[[22, 23], 0] += 3.0 * b
    # blink: the upper lids close onto the lower ones (which rise a little)
    for u, low in _LOWER_LIDS.items():
        gap = pts[low, 1] - pts[u, 1]
        pts[low, 1] -= 0.8 * k
        pts[u, 1] += k * (gap - 0.8)
    # gaze
    off = np.array([5.0 * np.clip(p.gaze_x, -1, 1), 2.5 * np.clip(p.gaze_y, -1, 1)], np.float32)
    pts[68] += off
    pts[69] += off
    # jaw: lips ride on the torn map (lower lip fully down, corners half way); the chin and the
    # jaw line follow the exact forward image of the map's backward warp
    drop = JAW_DROP_MM * float(np.clip(p.jaw_open, 0, 1))
    if drop >= 1e-3:
        g = 1.0 - smoothstep(20.0, 42.0, np.abs(pts[:, 0]))
        pts[_LOWER_LIP, 1] += drop * g[_LOWER_LIP]
        pts[_CORNERS, 1] += 0.5 * drop * g[_CORNERS]
        pts[[65, 66, 67], 1] += 0.15 * drop        # the lips part a little more than the tear
        pts[[61, 62, 63], 1] -= 0.05 * drop
        rest = np.zeros(70, bool)
        rest[:17] = True
        rest &= pts[:, 1] > MOUTH_Y
        pts[rest, 1] = jaw_forward(pts[rest, 0], pts[rest, 1], drop)
    return pts


# ---- the static base of one identity ---------------------------------------------------
@dataclass(frozen=True)
class BaseMaps:
    height: np.ndarray      # (H, W) S(x, y) mm, 0 outside the head
    tex: np.ndarray         # (4, H, W) float32 planes: R, G, B albedo 0..1, head mask 0/1
    spec: np.ndarray        # (H, W) float32 specular strength
    hair_rgb: np.ndarray    # (3,)
    iris_rgb: np.ndarray    # (3,)
    strands: np.ndarray     # (H, W) float32 hair-strand noise around 1


def grid() -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(X_MIN, X_MAX + 1e-6, TEXEL_MM, dtype=np.float32)
    ys = np.arange(Y_MIN, Y_MAX + 1e-6, TEXEL_MM, dtype=np.float32)
    return xs, ys


def to_texel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(x, np.float32) - X_MIN) / TEXEL_MM, (np.asarray(y, np.float32) - Y_MIN) / TEXEL_MM


def _lowfreq(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    small = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _profile(ys: np.ndarray, knots_y: list[float], knots_v: list[float], sigma_mm: float) -> np.ndarray:
    """A piecewise-linear profile over y, smoothed so its kinks do not show up as shading bands."""
    v = np.interp(ys, knots_y, knots_v)
    half = int(3 * sigma_mm / TEXEL_MM)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * TEXEL_MM / sigma_mm) ** 2)
    return np.convolve(np.pad(v, half, mode="edge"), k / k.sum(), "valid").astype(np.float32)


@lru_cache(maxsize=4)
def base_maps(identity: int = 0) -> BaseMaps:
    """Static geometry and texture of one synthetic person (cached; treat as read-only)."""
    rng = np.random.default_rng([7331, int(identity)])
    xs, ys = grid()
    X, Y = np.meshgrid(xs, ys)
    W = outline_half_width(Y)
    r = np.abs(X) / np.maximum(W, 1e-3)
    face = (r < 1.0) & (W > 0.5)
    D = _profile(ys, [-132, -126, -112, -92, -62, -40, -20, 20, 50, 80, 100, 108, 112, 116],
                 [0, 40, 68, 85, 93, 95, 92, 91, 89, 86, 80, 70, 50, 0], 4.0)[:, None]
    cross = (1.0 - np.clip(r, 0, 1) ** 2.4) ** (1 / 2.4)
    S = np.where(face, -D * cross, 0.0).astype(np.float32)
    neck = (np.abs(X) < 52.0) & (Y > 60.0)
    s_neck = -38.0 * np.sqrt(np.clip(1.0 - (X / 52.0) ** 2, 0, 1))
    S = np.where(neck, np.minimum(S, s_neck), S)
    inside = face | neck
    # facial relief (negative = towards the camera)
    for sx in (-1, 1):
        S += 8.0 * _gauss(X - 32 * sx, Y + 15, 13, 8)            # eye sockets
        S -= 3.0 * _gauss(X - 30 * sx, Y + 31, 16, 5)            # brow ridge
        S -= 7.0 * _gauss(X - 15 * sx, Y - 32, 5, 5)             # nose wings
        S -= 5.0 * _gauss(X - 40 * sx, Y - 22, 15, 14)           # cheeks
    h = _profile(ys, [-24, -16, 0, 20, 27, 31, 35, 38, 41], [0, 6, 13, 22, 26, 24, 14, 4, 0], 1.5)[:, None]
    sig = _profile(ys, [-24, 0, 20, 28, 36, 41], [6, 7, 10, 11, 13, 14], 3.0)[:, None]
    S -= (h * np.exp(-0.5 * (X / sig) ** 2)).astype(np.float32)   # nose
    S -= 4.0 * _gauss(X, Y - 95, 14, 9)                           # chin
    S -= 4.0 * _gauss(X, Y - 48, 18, 7)                           # upper-lip region
    hair = inside & ((Y < -72 + 0.012 * X ** 2) | ((r > 0.9) & (Y < 20)))
    hair_soft = cv2.GaussianBlur(hair.astype(np.float32), (0, 0), 1.5)
    S -= 4.0 * hair_soft
    S = np.where(inside, S, 0.0).astype(np.float32)

    # skin and hair colour of this identity
    skin = np.array([0.80, 0.61, 0.50], np.float32) * (1 + 0.10 * rng.uniform(-1, 1)) + rng.normal(0, 0.02, 3)
    hair_rgb = (np.array([0.17, 0.11, 0.07]) * rng.uniform(0.6, 2.2)).astype(np.float32)
    iris_rgb = np.array([[0.30, 0.20, 0.10], [0.22, 0.35, 0.45], [0.30, 0.38, 0.22]], np.float32)[rng.integers(3)]
    shape = X.shape
    tone = 1.0 + 0.05 * _lowfreq(rng, shape, (24, 12)) + 0.025 * cv2.GaussianBlur(
        rng.standard_normal(shape).astype(np.float32), (0, 0), 0.8)
    albedo = skin[:, None, None] * tone[None]
    blush = sum(_gauss(X - 38 * sx, Y - 20, 14, 12) for sx in (-1, 1)) + 0.8 * _gauss(X, Y - 25, 6, 6)
    albedo += np.array([0.06, -0.02, -0.02], np.float32)[:, None, None] * blush[None]
    albedo *= (1.0 - 0.1 * smoothstep(104, 124, Y))[None]        # neck in the chin's shade
    for _ in range(5):                                           # a few moles
        mx, my = rng.uniform(-45, 45), rng.uniform(-10, 95)
        albedo *= (1 - 0.45 * _gauss(X - mx, Y - my, 0.9, 0.9))[None]
    strands = 1.0 + 0.35 * cv2.resize(rng.standard_normal((shape[0] // 14, shape[1] * 2)).astype(np.float32),
                                      (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    albedo = albedo * (1 - hair_soft[None]) + hair_rgb[:, None, None] * (strands * hair_soft)[None]
    spec = (0.22 * (1 - hair_soft) + 0.08 * hair_soft).astype(np.float32)
    tex = np.concatenate([np.clip(albedo, 0, 1), inside[None]]).astype(np.float32)
    maps = BaseMaps(S, tex, spec, hair_rgb, iris_rgb, strands.astype(np.float32))
    for arr in (maps.height, maps.tex, maps.spec, maps.hair_rgb, maps.iris_rgb, maps.strands):
        arr.flags.writeable = False   # cached and shared between threads
    return maps
