"""A z-buffered triangle rasteriser shared by the capture readers that draw a surface into the colour
camera: the Kinect's depth-to-colour registration (a depth grid drawn as triangles) and the face mesh of a
plain video (mediapipe's triangles). Numba, inlined into the callers' loops."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def draw_triangle(ua, va, za, ia, ub, vb, zb, ib, uc, vc, zc, ic, vals, zbuf, out, max_step, ylo, yhi):
    """Draw one triangle (a, b, c) into colour rows [ylo, yhi) with z-test; ia/ib/ic index its depth pixels."""
    zmin = min(za, min(zb, zc))
    zmax = max(za, max(zb, zc))
    if max_step > 0.0 and zmax - zmin > max_step:
        return
    area = (ub - ua) * (vc - va) - (vb - va) * (uc - ua)
    if area == 0.0:
        return
    y0 = max(int(np.ceil(min(va, min(vb, vc)))), ylo)
    y1 = min(int(np.floor(max(va, max(vb, vc)))), yhi - 1)
    if y0 > y1:
        return
    wc = zbuf.shape[1]
    x0 = max(int(np.ceil(min(ua, min(ub, uc)))), 0)
    x1 = min(int(np.floor(max(ua, max(ub, uc)))), wc - 1)
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
