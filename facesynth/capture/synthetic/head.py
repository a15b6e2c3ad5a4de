"""The synthetic RGB-D camera: ray-cast the procedural head (face_model.py) into a frame.

Pure and deterministic: the same FaceParams, camera and identity give the same bytes. Each
pixel's ray is intersected with the head's height map in head coordinates: every other pixel
marches 16 depth levels to bracket the first crossing, then each pixel near the head settles it
by regula falsi (bilinear look-ups vectorised with cv2.remap). Like a time-of-flight sensor, the
silhouette's edge and grazing angles lose their depth readings first, random blobs top the holes
up to `hole_fraction` of the head. Colour is Lambert + Blinn-Phong shading of the albedo; the
background is a wall at `wall_mm`. Depth is metric: uint16 millimetres of camera z, 0 = no
reading. Landmarks are the 70 surface points of the expression, posed and projected with the
same intrinsics (colour pixels). Run benchmarks/synthetic_head.py for its speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from facesynth.capture.synthetic.face_features import frame_maps
from facesynth.capture.synthetic.face_model import TEXEL_MM, X_MIN, Y_MAX, Y_MIN, FaceParams, smoothstep

__all__ = ["FaceParams", "Intrinsics", "RenderedFrame", "HEAD_Z_MM", "pose_matrix", "project", "render_frame",
           "render_frame_and_mask", "sample_sequence"]

HEAD_Z_MM = 690.0          # head centre; the nose tip is ~575 mm from the camera, the forehead ~595
_LEVELS = tuple(np.linspace(-140.0, 6.0, 16))   # head-frame depths the rays march through (mm)
_REFINE = 4               # regula falsi steps for every ray near the head ...
_REFINE_SLOW = 5          # ... and more for the ~1 % still off by > 0.05 mm
_SETTLED_MM = 0.5          # |ray z - surface z| below this counts as a hit with a depth reading
_LIGHT = np.array([-0.35, -0.55, -1.0]) / np.linalg.norm([-0.35, -0.55, -1.0])
_FILL = np.array([0.6, -0.1, -1.0]) / np.linalg.norm([0.6, -0.1, -1.0])


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole colour camera; pixel (row v, column u) has its centre at (u, v)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def default(cls, width: int = 640, height: int = 480) -> "Intrinsics":
        """fx = fy = 600 at 640 px wide (scaled with the width, so the face fills the same share)."""
        f = 600.0 * width / 640.0
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width, "height": self.height}


class RenderedFrame(NamedTuple):
    color: np.ndarray       # (H, W, 3) uint8 RGB
    depth: np.ndarray       # (H, W) uint16 mm, 0 = no reading
    landmarks: np.ndarray   # (70, 2) float32 colour px


def pose_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-from-head rotation; + yaw turns the nose to the image right, + pitch down, + roll clockwise."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _head_translation(p: FaceParams) -> np.ndarray:
    return np.array([p.tx, p.ty, HEAD_Z_MM + p.tz])


@lru_cache(maxsize=4)
def _wall(cam: Intrinsics, wall_mm: float):
    """Background colour (uint8), depth (float32 mm), and colour (+, -) and depth noise patterns.

    Each frame reads the noise patterns at a seeded offset: per-frame sensor noise without
    drawing a million random numbers per frame.
    """
    rng = np.random.default_rng(99)
    h, w = cam.height, cam.width
    dx = (np.arange(w, dtype=np.float32) - cam.cx) / cam.fx
    dy = (np.arange(h, dtype=np.float32) - cam.cy) / cam.fy
    depth = np.broadcast_to(wall_mm / (1.0 - 0.12 * dx)[None, :], (h, w)).astype(np.float32)
    low = cv2.resize(rng.standard_normal((9, 12)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    light = 1.0 - 0.35 * (dx[None, :] ** 2 + dy[:, None] ** 2) + 0.04 * low
    light += 0.02 * rng.standard_normal((h, w)).astype(np.float32)
    rgb = np.array([0.64, 0.67, 0.70], np.float32) * light[..., None]
    noise = np.clip(rng.normal(0, 1.6, (h + 32, w + 32, 3)), -6, 6).round()
    pos = np.clip(noise, 0, None).astype(np.uint8)
    neg = np.clip(-noise, 0, None).astype(np.uint8)
    depth_noise = rng.standard_normal((h + 32, w + 32)).astype(np.float32)
    out = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8), depth, pos, neg, depth_noise
    for arr in out:
        arr.flags.writeable = False   # cached and shared between threads
    return out[0], out[1], (out[2], out[3]), out[4]


def project(points_cam: np.ndarray, cam: Intrinsics) -> np.ndarray:
    """Camera-frame points (N, 3) mm -> colour pixels (N, 2)."""
    p = np.asarray(points_cam, np.float64)
    return np.column_stack([cam.fx * p[:, 0] / p[:, 2] + cam.cx, cam.fy * p[:, 1] / p[:, 2] + cam.cy])


def _window(R: np.ndarray, T: np.ndarray, cam: Intrinsics) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (v0, v1, u0, u1) that can see the head map."""
    xs, ys, zs = (-86.0, 86.0), (Y_MIN, Y_MAX), (-140.0, 5.0)   # the head is at most 84 mm wide
    corners = np.array([[x, y, z] for x in xs for y in ys for z in zs]) @ R.T + T
    if (corners[:, 2] <= 1.0).any():
        return None
    uv = project(corners, cam)
    u0, v0 = np.floor(uv.min(0)).astype(int) - 1
    u1, v1 = np.ceil(uv.max(0)).astype(int) + 2
    u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, cam.width), min(v1, cam.height)
    return None if u0 >= u1 or v0 >= v1 else (v0, v1, u0, u1)


def _sample(plane: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    return cv2.remap(plane, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def render_frame(params: FaceParams, camera: Intrinsics | None = None, *, identity: int = 0,
                 hole_fraction: float = 0.03, depth_noise_mm: float = 0.8, wall_mm: float = 1200.0) -> RenderedFrame:
    """Colour, depth and true landmarks of one synthetic RGB-D frame.

    hole_fraction: share of the head's pixels (face, hair, neck) without a depth reading. The
    silhouette's edge pixels go first, then grazing angles, then random blobs; rays that do not
    settle on the surface (rare) are holes whatever the fraction. The wall gets a few blobs too.
    """
    return render_frame_and_mask(params, camera, identity=identity, hole_fraction=hole_fraction,
                                 depth_noise_mm=depth_noise_mm, wall_mm=wall_mm)[0]


def render_frame_and_mask(params: FaceParams, camera: Intrinsics | None = None, *, identity: int = 0,
                          hole_fraction: float = 0.03, depth_noise_mm: float = 0.8,
                          wall_mm: float = 1200.0) -> tuple[RenderedFrame, np.ndarray]:
    """render_frame, plus the (H, W) bool mask of pixels that see the head (holes included)."""
    cam = camera or Intrinsics.default()
    if not 0.0 <= hole_fraction <= 1.0:
        raise ValueError(f"hole_fraction must be in [0, 1], got {hole_fraction}")
    fm = frame_maps(params, identity)
    R, T = pose_matrix(params.yaw, params.pitch, params.roll), _head_translation(params)
    landmarks = project(fm.landmarks @ R.T + T, cam).astype(np.float32)
    wall_rgb, wall_depth, (noise_pos, noise_neg), depth_noise = _wall(cam, float(wall_mm))
    color = wall_rgb.copy()
    depth = wall_depth.copy()
    rng = np.random.default_rng([int(params.noise_seed) & 0xFFFFFFFF, 17])
    head = np.zeros((cam.height, cam.width), bool)
    score = _blob_field(rng, depth_noise, cam.height, cam.width)
    win = _window(R, T, cam)
    if win is not None:
        v0, v1, u0, u1 = win
        sub = (slice(v0, v1), slice(u0, u1))
        rgb, z, hit, settled, grazing = _cast(fm, R, T, cam, win)
        color[sub] = np.where(hit[..., None], rgb, color[sub])
        depth[sub] = np.where(hit, z, depth[sub])
        head[sub] = hit
        edge = hit & ~cv2.erode(hit.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        score[sub] += np.where(hit, 2.5 * smoothstep(0.55, 0.95, grazing) + 3.0 * edge, 0.0)
        score[sub][hit & ~settled] = np.inf
    holes = _pick_holes(score, head, hole_fraction)
    oy, ox = rng.integers(0, 32, 2)
    view = (slice(oy, oy + cam.height), slice(ox, ox + cam.width))
    if depth_noise_mm > 0:
        depth += depth_noise[view] * np.float32(depth_noise_mm)
    depth_mm = np.clip(depth + 0.5, 0, 65535).astype(np.uint16)
    depth_mm[holes] = 0
    oy, ox = rng.integers(0, 32, 2)
    view = (slice(oy, oy + cam.height), slice(ox, ox + cam.width))
    color = cv2.subtract(cv2.add(color, noise_pos[view]), noise_neg[view])
    return RenderedFrame(color, depth_mm, landmarks), head


def _packed(a: np.ndarray, idx: np.ndarray, width: int = 512) -> np.ndarray:
    """a.ravel()[idx] padded (edge) to whole rows of `width` (cv2.remap maps must be 2-D and < 32k wide)."""
    flat = a.ravel()[idx]
    rows = max(1, -(-len(flat) // width))
    out = np.empty(rows * width, a.dtype)
    out[:len(flat)] = flat
    out[len(flat):] = flat[-1] if len(flat) else 0
    return out.reshape(rows, width)


def _cast(fm, R: np.ndarray, T: np.ndarray, cam: Intrinsics, win: tuple[int, int, int, int]):
    """Intersect the window's pixel rays with the head; shaded colour, camera z, hit masks, grazing."""
    v0, v1, u0, u1 = win
    h, w = v1 - v0, u1 - u0
    dx = ((np.arange(u0, u1, dtype=np.float32) - np.float32(cam.cx)) / np.float32(cam.fx))[None, :]
    dy = ((np.arange(v0, v1, dtype=np.float32) - np.float32(cam.cy)) / np.float32(cam.fy))[:, None]
    Rt = R.T.astype(np.float32)
    bx, by, bz = (Rt @ T).astype(np.float32)
    inv_t = np.float32(1.0 / TEXEL_MM)
    cx0, cy0 = (bx + np.float32(X_MIN)) * inv_t, (by + np.float32(Y_MIN)) * inv_t
    levels = np.asarray(_LEVELS, np.float32)

    def rays(dx: np.ndarray, dy: np.ndarray):
        ax, ay, az = (Rt[i, 0] * dx + Rt[i, 1] * dy + Rt[i, 2] for i in range(3))   # ray in head frame
        return ax * inv_t, ay * inv_t, az

    def at(z: np.ndarray, kx, ky, az) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Texel coordinates of the ray point at camera depth z, and its height above the surface."""
        tx = z * kx
        tx -= cx0
        ty = z * ky
        ty -= cy0
        f = z * az
        f -= bz
        f -= _sample(fm.height, tx, ty)
        return tx, ty, f

    # 1) every other pixel marches head-frame depth levels from the front to the first crossing
    ck = rays(dx[:, ::2], dy[::2])
    first = np.full(ck[2].shape, len(levels) - 1, np.uint8)
    open_ = np.ones(ck[2].shape, bool)
    for k in range(1, len(levels) - 1):
        cross = open_ & (at((levels[k] + bz) / ck[2], *ck)[2] >= 0)
        np.copyto(first, np.uint8(k), where=cross)
        open_ &= ~cross
    # 2) pixels near the head bracket their crossing by their neighbours' levels ...
    first = np.repeat(np.repeat(first, 2, 0), 2, 1)[:h, :w]
    kernel = np.ones((5, 5), np.uint8)
    k_lo_full = cv2.erode(first, kernel)
    idx = np.flatnonzero(k_lo_full < len(levels) - 1)     # the rest only sees the plane behind the head
    rgb8 = np.zeros((h, w, 3), np.uint8)
    z_full = np.zeros((h, w), np.float32)
    hit_full = np.zeros((h, w), bool)
    settled_full = np.ones((h, w), bool)
    grazing_full = np.zeros((h, w), np.float32)
    if idx.size == 0:
        return rgb8, z_full, hit_full, settled_full, grazing_full
    pdx = _packed(np.broadcast_to(dx, (h, w)), idx)
    pdy = _packed(np.broadcast_to(dy, (h, w)), idx)
    k_lo = np.maximum(_packed(k_lo_full, idx).astype(np.intp) - 1, 0)
    k_hi = _packed(cv2.dilate(first, kernel), idx).astype(np.intp)
    fk = rays(pdx, pdy)
    az = fk[2]
    z_lo, z_hi = (levels[k_lo] + bz) / az, (levels[k_hi] + bz) / az
    f_lo, f_hi = at(z_lo, *fk)[2], at(z_hi, *fk)[2]
    bad = f_lo >= 0                               # a crossing the coarse march did not see
    if bad.any():
        z0 = (levels[0] + bz) / az
        np.copyto(z_lo, z0, where=bad)
        np.copyto(f_lo, at(z0, *fk)[2], where=bad)
    bad = f_hi < 0
    np.copyto(z_hi, (levels[-1] + bz) / az, where=bad)
    np.copyto(f_hi, levels[-1], where=bad)
    # 3) ... and settle it by regula falsi (Illinois); the few slow ones go on by themselves
    tx, ty, z, f = _illinois(at, fk, z_lo, z_hi, f_lo, f_hi, _REFINE)
    slow = np.flatnonzero(np.abs(f) > 0.05)
    if slow.size:
        sub = [_packed(a, slow) for a in (z_lo, z_hi, f_lo, f_hi, *fk)]
        stx, sty, sz, sf = _illinois(at, sub[4:], *sub[:4], _REFINE_SLOW)
        for dst, src in ((tx, stx), (ty, sty), (z, sz), (f, sf)):
            dst.ravel()[slow] = src.ravel()[:slow.size]
    rgb, ndotv = _shade(fm, R, tx, ty, pdx, pdy)
    n = idx.size
    rgb8.reshape(-1, 3)[idx] = rgb.reshape(-1, 3)[:n]
    z_full.ravel()[idx] = z.ravel()[:n]
    hit_full.ravel()[idx] = (_sample(fm.tex[3], tx, ty) > 0.5).ravel()[:n]
    settled_full.ravel()[idx] = (np.abs(f) < _SETTLED_MM).ravel()[:n]
    grazing_full.ravel()[idx] = 1.0 - np.abs(ndotv.ravel()[:n])
    return rgb8, z_full, hit_full, settled_full, grazing_full


def _illinois(at, fk, z_lo, z_hi, f_lo, f_hi, iterations: int):
    """Regula falsi with the Illinois fix on brackets f_lo < 0 <= f_hi (updated in place)."""
    side = np.zeros(z_lo.shape, bool)      # the last step moved the front end (True) or the back end
    tx = ty = z = f = None
    for it in range(iterations):
        den = np.maximum(f_hi - f_lo, np.float32(1e-6))
        z = z_hi - f_hi * (z_hi - z_lo) / den
        tx, ty, f = at(z, *fk)
        front = f < 0
        if it:
            np.multiply(f_hi, np.float32(0.5), out=f_hi, where=front & side)
            np.multiply(f_lo, np.float32(0.5), out=f_lo, where=~(front | side))
        np.copyto(z_lo, z, where=front)
        np.copyto(f_lo, f, where=front)
        np.copyto(z_hi, z, where=~front)
        np.copyto(f_hi, f, where=~front)
        side = front
    return tx, ty, z, f


def _shade(fm, R: np.ndarray, tx: np.ndarray, ty: np.ndarray, dx: np.ndarray, dy: np.ndarray):
    """Lambert (key + fill) and Blinn-Phong colour at surface texels; also n . view for dropouts."""
    gx, gy, spec = (_sample(p, tx, ty) for p in (fm.grad_x, fm.grad_y, fm.spec))
    inv_n = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    Rf = R.astype(np.float32)
    n = [(Rf[i, 0] * gx + Rf[i, 1] * gy - Rf[i, 2]) * inv_n for i in range(3)]  # camera-frame normal
    dn = 1.0 / np.sqrt(dx * dx + dy * dy + 1.0)                                   # unit view direction
    vx, vy, vz = -dx * dn, -dy * dn, -dn
    ndotv = n[0] * vx + n[1] * vy + n[2] * vz
    lx, ly, lz = (float(c) for c in _LIGHT)
    fx_, fy_, fz_ = (float(c) for c in _FILL)
    diffuse = np.clip(n[0] * lx + n[1] * ly + n[2] * lz, 0, None)
    fill = np.clip(n[0] * fx_ + n[1] * fy_ + n[2] * fz_, 0, None)
    hx, hy, hz = lx + vx, ly + vy, lz + vz
    hn = 1.0 / np.sqrt(hx * hx + hy * hy + hz * hz)
    ndoth = np.clip((n[0] * hx + n[1] * hy + n[2] * hz) * hn, 0, 1)
    shade = 0.28 + 0.62 * diffuse + 0.12 * fill
    gloss = 0.55 * spec * ndoth ** 24
    rgb = np.stack([_sample(fm.tex[i], tx, ty) * shade + gloss for i in range(3)], axis=-1)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), ndotv


def _blob_field(rng: np.random.Generator, pattern: np.ndarray, h: int, w: int) -> np.ndarray:
    """Hole likelihood per pixel: smooth random blobs with ragged edges (higher = hole first).

    The ragged part is the cached noise `pattern` read at a seeded offset (cheap per frame).
    """
    low = rng.standard_normal((h // 12 + 2, w // 12 + 2), dtype=np.float32)
    field = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    oy, ox = rng.integers(0, 32, 2)
    field += np.float32(0.15) * pattern[oy:oy + h, ox:ox + w]
    return field


def _pick_holes(score: np.ndarray, head: np.ndarray, fraction: float) -> np.ndarray:
    """The head's highest-scoring pixels up to `fraction` of it (forced ones are +inf), the wall alike."""
    values = score[head]
    need = int(round(fraction * values.size))
    forced = np.isinf(values)
    if need <= int(forced.sum()) or values.size == 0:
        holes = head & np.isinf(score)
        return holes
    thr = np.partition(values, values.size - need)[values.size - need]
    return score >= thr


# ---- a recording's worth of expressions ---------------------------------------------------
def _wave(rng: np.random.Generator, t: np.ndarray, base_hz: float) -> np.ndarray:
    """A smooth signal in [-1, 1]: a few sinusoids around base_hz plus smoothed seeded noise.

    Prefix-stable: the first k values do not depend on how long t is.
    """
    out = np.zeros_like(t)
    amps = 0.0
    for j in range(3):
        a = 1.0 / (j + 1)
        out += a * np.sin(2 * np.pi * base_hz * rng.uniform(0.6, 1.8) * (j + 1) * t + rng.uniform(0, 2 * np.pi))
        amps += a
    if len(t):
        dt = float(t[1] - t[0]) if len(t) > 1 else 1.0 / 30.0
        sigma = max(1.0, 0.25 / (base_hz * dt))
        half = int(3 * sigma)
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
        noise = np.convolve(rng.standard_normal(len(t) + 2 * half), kernel, "valid")
        out += 0.3 * amps * noise / np.sqrt((kernel ** 2).sum())
    return np.clip(out / (1.3 * amps), -1.0, 1.0)


def sample_sequence(seed: int, n: int, fps: float = 30.0) -> list[FaceParams]:
    """n frames of a smooth, seeded performance: talking, smiles, blinks, brow raises, small head motion.

    Deterministic and prefix-stable (sample_sequence(s, n)[:k] == sample_sequence(s, k)); head
    angles stay within +/-8 degrees, inside the original capture gate's 10.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    t = np.arange(n, dtype=np.float64) / float(fps)
    streams = iter(range(100))

    def rng() -> np.random.Generator:
        return np.random.default_rng([int(seed) & 0xFFFFFFFF, 4242, next(streams)])

    def span(lo: float, hi: float, hz: float) -> np.ndarray:
        return lo + (hi - lo) * 0.5 * (1.0 + _wave(rng(), t, hz))

    talking = span(0, 1, 0.25) ** 1.5
    phase = rng().uniform(0, 2 * np.pi)
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t + phase + 0.9 * np.sin(2 * np.pi * 0.9 * t))
    jaw = np.clip(talking * syllables * 1.1, 0, 1)
    blink = np.zeros_like(t)
    blinks = rng()
    tb = blinks.uniform(0.3, 2.0)
    while t.size and tb < t[-1] + 1:
        blink = np.maximum(blink, np.clip(1.0 - np.abs(t - tb) / 0.12, 0, 1))
        tb += max(1.0, blinks.exponential(3.5))
    cols = dict(jaw_open=jaw, smile=span(0, 1, 0.15) ** 1.5, blink=blink, brows=span(-0.6, 1.0, 0.2),
                gaze_x=span(-0.8, 0.8, 0.4), gaze_y=span(-0.5, 0.5, 0.3), yaw=span(-8, 8, 0.12),
                pitch=span(-6, 6, 0.1), roll=span(-4, 4, 0.08), tx=span(-15, 15, 0.06),
                ty=span(-10, 10, 0.08), tz=span(-30, 30, 0.05))
    return [FaceParams(**{k: float(v[i]) for k, v in cols.items()},
                       noise_seed=int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 99, i]).generate_state(1)[0]))
            for i in range(n)]
