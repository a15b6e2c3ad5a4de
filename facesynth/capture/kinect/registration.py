"""Depth (and IR) registered into the colour camera, as the Kinect SDK's depth-to-colour transform.

Every depth pixel is unprojected through the depth lens (undistorted ray x depth), moved into
the colour camera with the calibrated extrinsics and projected through the colour lens. The
quad between four neighbouring depth pixels is drawn into the colour image as two triangles
with depth interpolated across them; a z-buffer keeps the nearest surface (occlusion), and
colour pixels nothing lands on stay 0 (holes). Other depth-aligned channels (IR) are carried
along with the same interpolation weights.

Unlike the SDK, a triangle whose corners differ by more than `max_step_mm` is not drawn, so no
"rubber sheet" of invented depth is stretched across a silhouette (e.g. face -> background);
set it to 0 for the SDK's behaviour. Rays are computed once per calibration; per frame the
work is two numba kernels (`rasterize.py_func` is the same code, uncompiled: the benchmark's
reference).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from facesynth.capture.zbuffer import draw_triangle
from facesynth.capture.kinect.calibration import CameraModel, KinectCalibration


def depth_rays(cam: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Per depth pixel the undistorted normalised ray (x, y) (float32 H x W), NaN where invalid."""
    v, u = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    x, y, valid = cam.undistort(u, v)
    x = np.where(valid, x, np.nan).astype(np.float32)
    y = np.where(valid, y, np.nan).astype(np.float32)
    return x, y


def lens_params(cam: CameraModel) -> np.ndarray:
    """The colour camera's model as a flat float64 array for the kernels."""
    return np.array([cam.fx, cam.fy, cam.cx, cam.cy, *cam.k, cam.p1, cam.p2, cam.codx, cam.cody,
                     cam.metric_radius ** 2], dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def correspond(depth, xt, yt, rot, trans, lp, u_out, v_out, z_out):
    """Project every depth pixel into the colour image: (u, v) and colour-frame z (0 = invalid)."""
    fx, fy, cx, cy = lp[0], lp[1], lp[2], lp[3]
    k1, k2, k3, k4, k5, k6 = lp[4], lp[5], lp[6], lp[7], lp[8], lp[9]
    p1, p2, codx, cody, max_r2 = lp[10], lp[11], lp[12], lp[13], lp[14]
    h, w = depth.shape
    for i in range(h):
        for j in range(w):
            z_out[i, j] = 0.0
            d = depth[i, j]
            xr = xt[i, j]
            if d == 0 or not np.isfinite(xr):
                continue
            px = xr * d
            py = yt[i, j] * d
            pz = float(d)
            qx = rot[0, 0] * px + rot[0, 1] * py + rot[0, 2] * pz + trans[0]
            qy = rot[1, 0] * px + rot[1, 1] * py + rot[1, 2] * pz + trans[1]
            qz = rot[2, 0] * px + rot[2, 1] * py + rot[2, 2] * pz + trans[2]
            if qz <= 0.0:
                continue
            xp = qx / qz - codx
            yp = qy / qz - cody
            rs = xp * xp + yp * yp
            if rs > max_r2:
                continue
            a = 1.0 + rs * (k1 + rs * (k2 + rs * k3))
            b = 1.0 + rs * (k4 + rs * (k5 + rs * k6))
            dd = a / b if b != 0.0 else a
            xd = xp * dd + (rs + 2.0 * xp * xp) * p2 + 2.0 * xp * yp * p1 + codx
            yd = yp * dd + (rs + 2.0 * yp * yp) * p1 + 2.0 * xp * yp * p2 + cody
            u_out[i, j] = xd * fx + cx
            v_out[i, j] = yd * fy + cy
            z_out[i, j] = qz


@numba.njit(cache=True, nogil=True, inline="always")
def _quad(ua, va, za, ia, ub, vb, zb, ib, uc, vc, zc, ic, ud, vd, zd, id_, vals, zbuf, out, max_step, ylo, yhi):
    """Draw the quad a-b-c-d (clockwise) as triangles (a, b, c) and (a, c, d) over one bounding box."""
    zmin = min(min(za, zb), min(zc, zd))
    zmax = max(max(za, zb), max(zc, zd))
    if max_step > 0.0 and zmax - zmin > max_step:
        return
    a1 = (ub - ua) * (vc - va) - (vb - va) * (uc - ua)
    a2 = (uc - ua) * (vd - va) - (vc - va) * (ud - ua)
    if a1 == 0.0 or a2 == 0.0:
        return
    y0 = max(int(np.ceil(min(min(va, vb), min(vc, vd)))), ylo)
    y1 = min(int(np.floor(max(max(va, vb), max(vc, vd)))), yhi - 1)
    if y0 > y1:
        return
    wc = zbuf.shape[1]
    x0 = max(int(np.ceil(min(min(ua, ub), min(uc, ud)))), 0)
    x1 = min(int(np.floor(max(max(ua, ub), max(uc, ud)))), wc - 1)
    i1 = 1.0 / a1
    i2 = 1.0 / a2
    eps = -1e-6
    nch = vals.shape[0]
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            l0 = ((ub - x) * (vc - y) - (vb - y) * (uc - x)) * i1
            l1 = ((uc - x) * (va - y) - (vc - y) * (ua - x)) * i1
            l2 = 1.0 - l0 - l1
            second = False
            if l0 < eps or l1 < eps or l2 < eps:
                l0 = ((uc - x) * (vd - y) - (vc - y) * (ud - x)) * i2
                l1 = ((ud - x) * (va - y) - (vd - y) * (ua - x)) * i2
                l2 = 1.0 - l0 - l1
                if l0 < eps or l1 < eps or l2 < eps:
                    continue
                second = True
            if second:
                z = l0 * za + l1 * zc + l2 * zd
            else:
                z = l0 * za + l1 * zb + l2 * zc
            cur = zbuf[y, x]
            if cur == 0.0 or z < cur:
                zbuf[y, x] = z
                for c in range(nch):
                    if second:
                        out[c, y, x] = l0 * vals[c, ia] + l1 * vals[c, ic] + l2 * vals[c, id_]
                    else:
                        out[c, y, x] = l0 * vals[c, ia] + l1 * vals[c, ib] + l2 * vals[c, ic]


@numba.njit(cache=True, nogil=True, inline="always")
def _draw_row(i, u, v, z, vals, zbuf, out, max_step, ylo, yhi):
    """Draw the quads between depth rows i-1 and i (2 triangles each, 1 if a corner has no depth)."""
    w = z.shape[1]
    for j in range(1, w):
        # corners: tl (i-1, j-1), tr (i-1, j), br (i, j), bl (i, j-1)
        ztl, ztr, zbr, zbl = z[i - 1, j - 1], z[i - 1, j], z[i, j], z[i, j - 1]
        n = (ztl > 0) + (ztr > 0) + (zbr > 0) + (zbl > 0)
        if n < 3:
            continue
        itl, itr, ibr, ibl = (i - 1) * w + j - 1, (i - 1) * w + j, i * w + j, i * w + j - 1
        if n == 4:
            _quad(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                  u[i, j], v[i, j], zbr, ibr, u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out,
                  max_step, ylo, yhi)
        elif ztl == 0:
            draw_triangle(u[i - 1, j], v[i - 1, j], ztr, itr, u[i, j], v[i, j], zbr, ibr,
                      u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out,
                      max_step, ylo, yhi)
        elif ztr == 0:
            draw_triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i, j], v[i, j], zbr, ibr,
                      u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out,
                      max_step, ylo, yhi)
        elif zbr == 0:
            draw_triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                      u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out,
                      max_step, ylo, yhi)
        else:
            draw_triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                      u[i, j], v[i, j], zbr, ibr, vals, zbuf, out,
                      max_step, ylo, yhi)


@numba.njit(cache=True, nogil=True)
def rasterize(u, v, z, vals, zbuf, out, max_step, row0, row1):
    """Draw the quads of depth rows [row0, row1) into the whole colour image (one thread)."""
    for i in range(max(row0, 1), min(row1, z.shape[0])):
        _draw_row(i, u, v, z, vals, zbuf, out, max_step, 0, zbuf.shape[0])


@numba.njit(cache=True, nogil=True, parallel=True)
def rasterize_strips(u, v, z, vals, zbuf, out, max_step, strips):
    """As rasterize, with the colour image cut into `strips` row bands drawn in parallel.

    Each band is written by one thread only and sees the quads in the same order as the serial
    kernel, so the result is identical; a depth row is visited by the bands its projection spans.
    """
    h, w = z.shape
    hc = zbuf.shape[0]
    vmin = np.full(h, np.inf)
    vmax = np.full(h, -np.inf)
    for i in range(h):
        for j in range(w):
            if z[i, j] > 0:
                vmin[i] = min(vmin[i], v[i, j])
                vmax[i] = max(vmax[i], v[i, j])
    for s in numba.prange(strips):
        ylo = s * hc // strips
        yhi = (s + 1) * hc // strips
        for i in range(1, h):
            lo = min(vmin[i - 1], vmin[i])
            hi = max(vmax[i - 1], vmax[i])
            if hi >= ylo - 1 and lo <= yhi:
                _draw_row(i, u, v, z, vals, zbuf, out, max_step, ylo, yhi)


@numba.njit(cache=True, nogil=True)
def to_u16(src, dst):
    """Round and clip float images to uint16 in one pass (0 stays 0)."""
    flat_src = src.reshape(-1)
    flat_dst = dst.reshape(-1)
    for k in range(flat_src.size):
        x = flat_src[k] + 0.5
        flat_dst[k] = 0 if x < 1.0 else (65535 if x >= 65535.0 else np.uint16(x))


@dataclass(eq=False)
class Registration:
    """Depth-to-colour registration for one calibration (rays cached; call per frame)."""

    calibration: KinectCalibration
    max_step_mm: float = 50.0
    threads: int = 1   # >1: draw colour row bands in parallel (same result); 0: numba's thread count

    def __post_init__(self) -> None:
        cal = self.calibration
        self.xt, self.yt = depth_rays(cal.depth)
        self.rot = np.ascontiguousarray(cal.rotation, dtype=np.float64)
        self.trans = np.ascontiguousarray(cal.translation, dtype=np.float64)
        self.lens = lens_params(cal.color)
        self.color_shape = (cal.color.height, cal.color.width)
        self.depth_shape = (cal.depth.height, cal.depth.width)
        self._lock = threading.Lock()
        self._scratch: tuple | None = None
        if self.threads <= 0:
            self.threads = numba.get_num_threads()

    def project(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour-image (u, v) and colour-frame z (mm, 0 = invalid) of every depth pixel."""
        depth = self._check(depth, "depth")
        u, v, z = (np.empty(self.depth_shape, np.float32) for _ in range(3))
        correspond(depth, self.xt, self.yt, self.rot, self.trans, self.lens, u, v, z)
        return u, v, z

    def register(self, depth: np.ndarray, *channels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Depth (uint16 mm, depth camera) -> uint16 mm in the colour camera, plus each channel registered."""
        depth = self._check(depth, "depth")
        chans = [self._check(ch, f"channel {c}") for c, ch in enumerate(channels)]
        # scratch buffers are reused (no page faults on 7 MB of fresh memory per frame);
        # a second thread calling at the same time gets its own
        mine = self._lock.acquire(blocking=False)
        try:
            buf = self._buffers(len(chans)) if mine else self._new_buffers(len(chans))
            u, v, z, vals, zbuf, out = buf
            correspond(depth, self.xt, self.yt, self.rot, self.trans, self.lens, u, v, z)
            for c, ch in enumerate(chans):
                vals[c] = ch.reshape(-1)
            zbuf.fill(0)
            out.fill(0)
            if self.threads > 1:
                rasterize_strips(u, v, z, vals, zbuf, out, float(self.max_step_mm), 4 * self.threads)
            else:
                rasterize(u, v, z, vals, zbuf, out, float(self.max_step_mm), 0, self.depth_shape[0])
            reg = np.empty(self.color_shape, np.uint16)
            to_u16(zbuf, reg)
            regs = np.empty(out.shape, np.uint16)
            to_u16(out, regs)
        finally:
            if mine:
                self._lock.release()
        return reg, list(regs)

    def _new_buffers(self, nch: int) -> tuple:
        u, v, z = (np.empty(self.depth_shape, np.float32) for _ in range(3))
        vals = np.empty((nch, self.depth_shape[0] * self.depth_shape[1]), np.float32)
        return u, v, z, vals, np.empty(self.color_shape, np.float32), np.empty((nch, *self.color_shape), np.float32)

    def _buffers(self, nch: int) -> tuple:
        if self._scratch is None or self._scratch[3].shape[0] != nch:
            self._scratch = self._new_buffers(nch)
        return self._scratch

    def _check(self, img: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(img)
        if a.shape != self.depth_shape:
            raise ValueError(f"{what} is {a.shape}, the depth camera gives {self.depth_shape}")
        return np.ascontiguousarray(a)
