"""Training pairs (landmark drawing -> RGBD face) read once from the frame store into memory.

Everything is preloaded as compact tensors (uint8 drawing/colour, float16 unit depth) so a
training step only indexes and converts a batch: the model never waits for data. Depth
comes from fill/depth (holes filled) or, without a fill stage, crop/depth; it is normalised
with the store's `normalisation` attribute (face/depth_norm.py). Background (no face
depth) is -1 on every channel, as the network is asked to output it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from facesynth.errors import StoreError
from facesynth.face.depth_norm import NEAR_MM, mm_to_unit
from facesynth.model.augment import detail_mask

TRAIN, EVAL = 0, 1


@dataclass
class PairData:
    """Preloaded pairs of one split. Tensors are (N, C, S, S), frame order = `frames`."""

    drawing: torch.Tensor      # uint8, 0/255 lines
    color: torch.Tensor        # uint8 RGB, background 0
    depth: torch.Tensor        # float16 in [-1, 1], background -1
    face: torch.Tensor         # bool, inside the face (valid target depth, holes filled or not)
    frames: np.ndarray         # store frame indices
    norm: dict = field(default_factory=dict)
    measured: torch.Tensor | None = None  # bool, face pixels the sensor measured (not filled)
    detail: torch.Tensor | None = None    # bool, eyes and mouth (model/augment.py detail_mask)

    def __post_init__(self):
        if self.measured is None:
            self.measured = self.face

    def __len__(self) -> int:
        return int(self.drawing.shape[0])

    @property
    def size(self) -> int:
        return int(self.drawing.shape[-1])

    def to(self, device) -> "PairData":
        return PairData(self.drawing.to(device), self.color.to(device), self.depth.to(device),
                        self.face.to(device), self.frames, self.norm, self.measured.to(device),
                        None if self.detail is None else self.detail.to(device))

    def batch(self, idx, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input (B,1,S,S), target (B,4,S,S)) float32 in [-1, 1] for frame positions `idx`."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.drawing.device)
        x = self.drawing.index_select(0, idx).float() / 127.5 - 1.0
        rgb = self.color.index_select(0, idx).float() / 127.5 - 1.0
        y = torch.cat([rgb, self.depth.index_select(0, idx).float()], 1)
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y

    def detail_batch(self, idx) -> torch.Tensor | None:
        """(B,1,S,S) float 0/1 eye and mouth map of frame positions `idx` (None if not loaded)."""
        if self.detail is None:
            return None
        return self.detail.index_select(0, torch.as_tensor(idx, dtype=torch.long, device=self.detail.device)).float()


def normalisation(store) -> dict:
    """The store's `normalisation` (d0_mm, face_depth_mm, near_mm, size...) + camera intrinsics."""
    attrs = store.attrs
    norm = dict(attrs.get("normalisation") or {})
    if "d0_mm" not in norm:
        raise StoreError(f"store {store.path} has no 'normalisation' attribute with d0_mm "
                         "(written by face.crop); run the crop stage first")
    norm.setdefault("face_depth_mm", 80.0)
    norm.setdefault("near_mm", NEAR_MM)
    if "intrinsics" in attrs:  # of the colour camera (the crop's own, if any, stay in norm)
        norm["camera_intrinsics"] = attrs["intrinsics"]
    return norm


def depth_group(store) -> str:
    return "fill/depth" if store.has("fill/depth") else "crop/depth"


def select_frames(store, split: int, frames: np.ndarray | None = None) -> np.ndarray:
    """Frames of `split` that the crop stage accepted (and, if given, that are in `frames`)."""
    ok = np.asarray(store.read("crop/ok"), bool)
    n = len(ok)
    if store.has("fill/ok"):
        ok = ok & np.asarray(store.read("fill/ok"), bool)[:n]
    sp = np.asarray(store.read("raw/split"))[:n] if store.has("raw/split") else np.zeros(n, np.uint8)
    keep = ok & (sp == split)
    if frames is not None:
        sel = np.zeros(n, bool)
        frames = np.asarray(frames, int)
        sel[frames[(frames >= 0) & (frames < n)]] = True
        keep &= sel
    return np.flatnonzero(keep)


def _draw(points: np.ndarray, size: int) -> np.ndarray:
    from facesynth.face.drawing import draw_landmarks

    img = np.asarray(draw_landmarks(points, size))
    if img.dtype != np.uint8:  # float drawings in [-1, 1] or [0, 1]
        img = ((img + 1.0) * 127.5 if img.min() < 0 else img * 255.0).clip(0, 255).astype(np.uint8)
    return img.reshape(size, size)


def load_pairs(store, split: int, size: int | None = None, frames: np.ndarray | None = None,
               chunk: int = 64) -> PairData:
    """Read, draw and normalise every accepted frame of `split` into memory."""
    norm = normalisation(store)
    d0, fd = float(norm["d0_mm"]), float(norm["face_depth_mm"])
    idx = select_frames(store, split, frames)
    crop_size = int(store.array("crop/color").shape[1])
    size = int(size or crop_size)
    scale = size / crop_size
    dg = depth_group(store)
    draws, cols, deps, faces, measured, details = [], [], [], [], [], []
    for lo in range(0, len(idx), chunk):
        part = idx[lo:lo + chunk]
        start, stop = int(part[0]), int(part[-1]) + 1
        rel = part - start
        col = store.read("crop/color", start, stop)[rel]
        dep = store.read(dg, start, stop)[rel]
        # filled depth covers the holes inside the face (and is 0 outside it), so it is the
        # face mask then; crop/mask marks only the pixels the sensor measured (the filler keeps
        # those exactly), which is where the depth error is measured
        mask = store.read("crop/mask", start, stop)[rel] if store.has("crop/mask") else None
        fill_mask = dg == "fill/depth"
        pts = store.read("crop/landmarks", start, stop)[rel]
        for j in range(len(part)):
            c, d = col[j], dep[j]
            meas = (np.ones(d.shape, bool) if mask is None else np.asarray(mask[j], bool)) & (d > 0)
            if size != crop_size:
                c = cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                d = cv2.resize(d, (size, size), interpolation=cv2.INTER_NEAREST)
                meas = cv2.resize(meas.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
            m = np.ones(d.shape, bool) if fill_mask or mask is None else meas
            unit = mm_to_unit(d, d0, fd, m)
            fg = unit > -1.0
            points = np.asarray(pts[j], np.float32) * scale
            draws.append(_draw(points, size)[None])
            details.append(detail_mask(points, size)[None])
            cols.append(np.where(fg[..., None], c, 0).transpose(2, 0, 1))
            deps.append(unit[None])
            faces.append((fg & m)[None])
            measured.append((fg & meas)[None])
    s = size
    return PairData(
        drawing=torch.from_numpy(np.stack(draws) if draws else np.zeros((0, 1, s, s), np.uint8)),
        color=torch.from_numpy(np.stack(cols) if cols else np.zeros((0, 3, s, s), np.uint8)),
        depth=torch.from_numpy((np.stack(deps) if deps else np.zeros((0, 1, s, s), np.float32))
                               .astype(np.float16)),
        face=torch.from_numpy(np.stack(faces) if faces else np.zeros((0, 1, s, s), bool)),
        frames=idx, norm={**norm, "size": size, "crop_size": crop_size},
        measured=torch.from_numpy(np.stack(measured) if measured else np.zeros((0, 1, s, s), bool)),
        detail=torch.from_numpy(np.stack(details) if details else np.zeros((0, 1, s, s), bool)),
    )
