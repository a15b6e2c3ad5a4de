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

from dataclasses import dataclass

import numba
import numpy as np

from facesynth.vision.kinect_calibration import CameraModel, KinectCalibration


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
def _triangle(ua, va, za, ia, ub, vb, zb, ib, uc, vc, zc, ic, vals, zbuf, out, max_step):
    """Draw one triangle (a, b, c) with z-test; ia/ib/ic index the depth pixel of each corner."""
    zmin = min(za, min(zb, zc))
    zmax = max(za, max(zb, zc))
    if max_step > 0.0 and zmax - zmin > max_step:
        return
    area = (ub - ua) * (vc - va) - (vb - va) * (uc - ua)
    if area == 0.0:
        return
    hc, wc = zbuf.shape
    x0 = max(int(np.ceil(min(ua, min(ub, uc)))), 0)
    x1 = min(int(np.floor(max(ua, max(ub, uc)))), wc - 1)
    y0 = max(int(np.ceil(min(va, min(vb, vc)))), 0)
    y1 = min(int(np.floor(max(va, max(vb, vc)))), hc - 1)
    inv = 1.0 / area
    eps = -1e-6
    nch = vals.shape[0]
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            la = ((ub - x) * (vc - y) - (vb - y) * (uc - x)) * inv
            lb = ((uc - x) * (va - y) - (vc - y) * (ua - x)) * inv
            lc = 1.0 - la - lb
            if la < eps or lb < eps or lc < eps:
                continue
            z = la * za + lb * zb + lc * zc
            cur = zbuf[y, x]
            if cur == 0.0 or z < cur:
                zbuf[y, x] = z
                for c in range(nch):
                    out[c, y, x] = la * vals[c, ia] + lb * vals[c, ib] + lc * vals[c, ic]


@numba.njit(cache=True, nogil=True)
def rasterize(u, v, z, vals, zbuf, out, max_step, row0, row1):
    """Draw the quads of depth rows [row0, row1) (each quad = 2 triangles, or 1 if a corner is missing)."""
    h, w = z.shape
    for i in range(max(row0, 1), min(row1, h)):
        for j in range(1, w):
            # corners: tl (i-1, j-1), tr (i-1, j), br (i, j), bl (i, j-1)
            ztl, ztr, zbr, zbl = z[i - 1, j - 1], z[i - 1, j], z[i, j], z[i, j - 1]
            n = (ztl > 0) + (ztr > 0) + (zbr > 0) + (zbl > 0)
            if n < 3:
                continue
            itl, itr, ibr, ibl = (i - 1) * w + j - 1, (i - 1) * w + j, i * w + j, i * w + j - 1
            if n == 4:
                _triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                          u[i, j], v[i, j], zbr, ibr, vals, zbuf, out, max_step)
                _triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i, j], v[i, j], zbr, ibr,
                          u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out, max_step)
            elif ztl == 0:
                _triangle(u[i - 1, j], v[i - 1, j], ztr, itr, u[i, j], v[i, j], zbr, ibr,
                          u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out, max_step)
            elif ztr == 0:
                _triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i, j], v[i, j], zbr, ibr,
                          u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out, max_step)
            elif zbr == 0:
                _triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                          u[i, j - 1], v[i, j - 1], zbl, ibl, vals, zbuf, out, max_step)
            else:
                _triangle(u[i - 1, j - 1], v[i - 1, j - 1], ztl, itl, u[i - 1, j], v[i - 1, j], ztr, itr,
                          u[i, j], v[i, j], zbr, ibr, vals, zbuf, out, max_step)


@dataclass
class Registration:
    """Depth-to-colour registration for one calibration (rays cached; call per frame)."""

    calibration: KinectCalibration
    max_step_mm: float = 50.0

    def __post_init__(self) -> None:
        cal = self.calibration
        self.xt, self.yt = depth_rays(cal.depth)
        self.rot = np.ascontiguousarray(cal.rotation, dtype=np.float64)
        self.trans = np.ascontiguousarray(cal.translation, dtype=np.float64)
        self.lens = lens_params(cal.color)
        self.color_shape = (cal.color.height, cal.color.width)
        self.depth_shape = (cal.depth.height, cal.depth.width)

    def project(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour-image (u, v) and colour-frame z (mm, 0 = invalid) of every depth pixel."""
        depth = self._check(depth, "depth")
        u = np.zeros(self.depth_shape, np.float32)
        v = np.zeros(self.depth_shape, np.float32)
        z = np.zeros(self.depth_shape, np.float32)
        correspond(depth, self.xt, self.yt, self.rot, self.trans, self.lens, u, v, z)
        return u, v, z

    def register(self, depth: np.ndarray, *channels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Depth (uint16 mm, depth camera) -> uint16 mm in the colour camera, plus each channel registered."""
        u, v, z = self.project(depth)
        vals = np.zeros((len(channels), *self.depth_shape), np.float32)
        for c, ch in enumerate(channels):
            vals[c] = self._check(ch, f"channel {c}")
        zbuf = np.zeros(self.color_shape, np.float32)
        out = np.zeros((len(channels), *self.color_shape), np.float32)
        rasterize(u, v, z, vals.reshape(len(channels), u.size), zbuf, out,
                  float(self.max_step_mm), 0, self.depth_shape[0])
        reg = np.clip(np.rint(zbuf), 0, 65535).astype(np.uint16)
        regs = [np.clip(np.rint(o), 0, 65535).astype(np.uint16) for o in out]
        return reg, regs

    def _check(self, img: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(img)
        if a.shape != self.depth_shape:
            raise ValueError(f"{what} is {a.shape}, the depth camera gives {self.depth_shape}")
        return np.ascontiguousarray(a)
