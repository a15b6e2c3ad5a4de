"""FDCBOP, the original Face Synthesizer's depth filler, re-implemented from its description.

The baseline that facesynth's depth.fill must beat (benchmarks/depth_fill.py). Exemplar-based,
colour-guided depth inpainting (ETRI Journal 2016, section III, as used by the original tool):

1. depth is inverted so that near = large (holes stay 0); the source region is the measured
   pixels eroded by a (half-patch x half-patch) rectangle;
2. up to `source_amount` (10000) source centres are chosen: a regular grid over the source
   region, topped up with random source pixels;
3. while the hole has a boundary: every boundary pixel p (a hole pixel with a measured
   neighbour, at least half an extended patch from the border) gets the priority
   confidence(p) * distance(p), confidence = mean of the inverted patch (holes count 0),
   distance = (i_max - mean of its measured pixels) / 255; the *lowest* priority is filled
   first (the farthest, least-known surface: holes are mostly occlusion shadows);
4. the most similar 17x17 patch (SSD) is searched among the source centres twice: once on
   depth, once on colour;
5. each candidate gets a reliability 1 / (|mean(candidate) - mean(target patch)| *
   |mean(candidate) - mean(target's 29x29 band around the patch)|);
6. if the two candidates agree (RMS difference / patch size < 10) their reliability-weighted
   blend is copied, else the more reliable one; only hole pixels of the target are written;
7. at the end the depth is inverted back and filled pixels are replaced by a 9x9 Gaussian blur.

This version loops over boundary pixels and source candidates in Python like the original
(`vectorised=True` batches the candidate search with numpy, a faster baseline).
"""
from __future__ import annotations

import math

import cv2
import numpy as np


class FDCBOP:
    def __init__(self, patch: int = 17, ext_patch: int = 29, source_amount: int = 10000, blur: int = 9,
                 seed: int = 0, vectorised: bool = False, max_iters: int = 5000):
        self.h = patch // 2
        self.eh = ext_patch // 2
        self.source_amount = source_amount
        self.blur = blur
        self.rng = np.random.default_rng(seed)
        self.vectorised = vectorised
        self.max_iters = max_iters

    # ---- set-up -----------------------------------------------------------------------------
    def _sources(self, source: np.ndarray) -> np.ndarray:
        """(k, 2) row, col centres: a grid over the source region topped up at random."""
        eh = self.eh
        inner = np.zeros_like(source)
        inner[eh:-eh - 1, eh:-eh - 1] = source[eh:-eh - 1, eh:-eh - 1]
        all_idx = np.argwhere(inner)
        if len(all_idx) <= self.source_amount:
            return all_idx
        q = math.sqrt(len(all_idx) / self.source_amount)
        sx, sy = math.ceil(q), int(round(q))
        if self.rng.random() < 0.5:
            sx, sy = sy, sx
        grid = np.zeros_like(inner)
        grid[::sy, ::sx] = inner[::sy, ::sx]
        chosen = set(map(tuple, np.argwhere(grid)))
        need = max(self.source_amount - len(chosen), 0)
        order = self.rng.permutation(len(all_idx))
        for k in order:
            if need == 0:
                break
            t = tuple(all_idx[k])
            if t not in chosen:
                chosen.add(t)
                need -= 1
        return np.array(sorted(chosen), dtype=np.int64)

    @staticmethod
    def _known_mean(patch: np.ndarray) -> float:
        n = np.count_nonzero(patch)
        return float(patch.sum() / n) if n else 0.0

    # ---- steps ------------------------------------------------------------------------------
    def _boundary(self, hole: np.ndarray) -> np.ndarray:
        eh = self.eh
        inner = np.zeros_like(hole)
        inner[eh:-eh - 1, eh:-eh - 1] = hole[eh:-eh - 1, eh:-eh - 1]
        contours, _ = cv2.findContours(inner.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        if not contours:
            return np.zeros((0, 2), np.int64)
        pts = np.concatenate([c[:, 0, ::-1] for c in contours]).astype(np.int64)  # (row, col)
        return pts

    def _pick_target(self, depth: np.ndarray, hole: np.ndarray, i_max: float, pts: np.ndarray):
        h = self.h
        best, best_p = math.inf, None
        for r, c in pts:
            if hole[r - 1:r + 2, c - 1:c + 2].all():
                continue  # not on the real boundary
            patch = depth[r - h:r + h + 1, c - h:c + h + 1]
            conf = patch.sum() / patch.size
            dist = (i_max - self._known_mean(patch)) / 255.0
            pr = conf * dist
            if pr < best:
                best, best_p = pr, (int(r), int(c))
        return best_p

    def _search(self, img: np.ndarray, target: np.ndarray, sources: np.ndarray, cand: np.ndarray | None):
        h = self.h
        if self.vectorised and cand is not None:
            diff = cand - target.reshape(1, -1)
            ssd = np.einsum("ij,ij->i", diff, diff)
            return sources[int(np.argmin(ssd))]
        best, best_q = math.inf, sources[0]
        for r, c in sources:
            q = img[r - h:r + h + 1, c - h:c + h + 1]
            ssd = float(((target - q) ** 2).sum())
            if ssd < best:
                best, best_q = ssd, (r, c)
        return best_q

    def __call__(self, depth_mm: np.ndarray, color: np.ndarray) -> np.ndarray:
        h, eh = self.h, self.eh
        d0 = np.asarray(depth_mm).astype(np.float64)
        i_max = float(d0.max())
        depth = np.where(d0 > 0, i_max - d0 + 1.0, 0.0)
        col = np.asarray(color).astype(np.float64)
        hole = depth == 0
        orig_hole = hole.copy()
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (h, h))
        source = cv2.erode((~hole).astype(np.uint8), k) > 0
        sources = self._sources(source)
        if len(sources) == 0:
            return np.asarray(depth_mm).copy()
        col_cands = None
        if self.vectorised:
            win = np.lib.stride_tricks.sliding_window_view(col, (2 * h + 1, 2 * h + 1), axis=(0, 1))
            col_cands = win[sources[:, 0] - h, sources[:, 1] - h].transpose(0, 2, 3, 1).reshape(len(sources), -1)
        for _ in range(self.max_iters):
            pts = self._boundary(hole)
            if len(pts) == 0:
                break
            p = self._pick_target(depth, hole, i_max, pts)
            if p is None:
                break
            r, c = p
            sl = (slice(r - h, r + h + 1), slice(c - h, c + h + 1))
            psi_d, psi_c = depth[sl], col[sl]
            dep_cands = None
            if self.vectorised:
                win = np.lib.stride_tricks.sliding_window_view(depth, (2 * h + 1, 2 * h + 1))
                dep_cands = win[sources[:, 0] - h, sources[:, 1] - h].reshape(len(sources), -1)
            qd = self._search(depth, psi_d, sources, dep_cands)
            qc = self._search(col, psi_c, sources, col_cands)
            cand_d = depth[qd[0] - h:qd[0] + h + 1, qd[1] - h:qd[1] + h + 1]
            cand_c = depth[qc[0] - h:qc[0] + h + 1, qc[1] - h:qc[1] + h + 1]
            band = depth[r - eh:r + eh + 1, c - eh:c + eh + 1].copy()
            band[eh - h:eh + h + 1, eh - h:eh + h + 1] = 0
            m_p, m_band = self._known_mean(psi_d), self._known_mean(band)
            m_d, m_c = self._known_mean(cand_d), self._known_mean(cand_c)
            e_d, e_c = abs(m_d - m_p) * abs(m_d - m_band), abs(m_c - m_p) * abs(m_c - m_band)
            rel_d = 1.0 / e_d if e_d != 0 else 1.0
            rel_c = 1.0 / e_c if e_c != 0 else 1.0
            w_d, w_c = rel_d / (rel_d + rel_c), rel_c / (rel_d + rel_c)
            agree = math.sqrt(float(((cand_d - cand_c) ** 2).sum())) / cand_d.size
            if agree < 10:
                both = (cand_d != 0) & (cand_c != 0)
                target = (cand_d * w_d + cand_c * w_c) * both
            else:
                target = cand_d if w_d > w_c else cand_c
            fill = hole[sl]
            psi_d[fill] = target[fill]  # writes into depth (a view)
            hole[sl] = psi_d == 0
        out = np.where(depth > 0, i_max - depth + 1.0, 0.0)
        if self.blur:
            b = cv2.GaussianBlur(out, (self.blur, self.blur), 0)
            out = np.where(orig_hole, b, out)
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
