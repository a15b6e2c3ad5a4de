"""Face stage nodes: `face.landmarks` (raw -> 70 landmarks) and `face.crop` (-> normalised crops).

Thin adapters over landmarks_mediapipe.py and crop.py beside it. Both handle one chunk
(ChunkRef frame range) at a time and write whole chunks of their own arrays.

D0 (the reference nose depth) must be the same for every crop replica: it is taken from the first
frame, in frame order, that has landmarks and a nose depth. A replica that needs it and finds no
`normalisation` root attribute waits until `landmarks/done` says every earlier frame has been
landmarked, then computes it from the store; any replica computes the same value from the same
frame, so concurrent writes of the attribute agree (race-free by determinism).
"""
from __future__ import annotations

import asyncio
import time
from typing import Literal

import numpy as np
from pydantic import Field

from facesynth.errors import StoreError
from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register
from facesynth.face import crop as vcrop


class LandmarkParams(Params):
    use_true_landmarks: bool = Field(False, description="use raw/landmarks_true (synthetic sources) instead of mediapipe")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="face detector score needed")
    far_faces: bool = Field(False, description="also run the full-range detector on every frame (counts distant faces)")


@register
class FaceLandmarks(Node):
    kind = "face.landmarks"
    summary = "70 face landmarks (mediapipe face mesh mapped to iBUG-68 + pupils), confidence and head pose"
    Params = LandmarkParams
    inputs = {"rgbd": "ChunkRef('raw', ...): raw/color (+ raw/landmarks_true)"}
    outputs = {"landmarks": "ChunkRef('landmarks', ...): landmarks/points, /ok, /confidence, /pose"}

    async def setup(self) -> None:
        self._fl = None
        self.skipped = 0

    def _landmarker(self):
        if self._fl is None:
            from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

            self._fl = FaceMeshLandmarker(min_detection=self.params.min_confidence,
                                          far_faces=self.params.far_faces)
        return self._fl

    async def process(self, port: str, item: ChunkRef) -> list[Output]:
        return [await self.run_blocking(self._chunk, item)]

    def _chunk(self, item: ChunkRef) -> Output:
        store = self.ctx.store()
        n_cap = store.array("raw/color").shape[0]
        a, b = item.start, item.stop
        raw_ok = np.asarray(store.read("raw/ok", a, b), bool) if store.has("raw/ok") else np.ones(b - a, bool)
        pts = np.full((b - a, 70, 2), np.nan, np.float32)
        ok = np.zeros(b - a, bool)
        conf = np.zeros(b - a, np.float32)
        pose = np.full((b - a, 3), np.nan, np.float32)
        reasons = {"no_face": 0, "several_faces": 0, "no_frame": 0}
        use_true = self.params.use_true_landmarks and store.has("raw/landmarks_true")
        if use_true:
            truth = store.read("raw/landmarks_true", a, b)
            for i in range(b - a):
                if raw_ok[i] and np.isfinite(truth[i]).all():
                    pts[i], ok[i], conf[i] = truth[i], True, 1.0
        else:
            color = store.read("raw/color", a, b)
            fl = self._landmarker()
            for i in range(b - a):
                if not raw_ok[i]:
                    reasons["no_frame"] += 1
                    continue
                faces = fl.detect(color[i])
                if len(faces) != 1:
                    reasons["no_face" if not faces else "several_faces"] += 1
                    continue
                f = faces[0]
                pts[i], ok[i], conf[i], pose[i] = f.points, True, f.confidence, f.pose
        for name, data, shape, dtype, fill in (
            ("landmarks/points", pts, (70, 2), np.float32, np.nan),
            ("landmarks/confidence", conf, (), np.float32, 0.0), ("landmarks/pose", pose, (3,), np.float32, np.nan),
            ("landmarks/done", np.ones(b - a, bool), (), bool, False),
            ("landmarks/ok", ok, (), bool, False),  # last: ok flags say the chunk's other arrays exist
        ):
            store.ensure_array(name, n_cap, shape, dtype, fill_value=fill)
            store.write(name, a, data)
        skipped = int(raw_ok.sum() - ok.sum())
        self.skipped += skipped
        if skipped:
            self.ctx.report("landmarks.skipped", chunk=item.key, skipped=skipped, total=self.skipped,
                            reasons={k: v for k, v in reasons.items() if v})
        return Output("landmarks", ChunkRef("landmarks", a, b))

    async def close(self) -> None:
        if getattr(self, "_fl", None) is not None:
            self._fl.close()


class CropParams(Params):
    size: Literal[256, 512] = Field(256, description="crop side in px (256 for CPU, 512 as the original)")
    face_depth_mm: float = Field(80.0, ge=10.0, le=500.0, description="depth range behind the nose tip")
    margin: float = Field(vcrop.MARGIN, ge=1.0, le=4.0, description="crop side / landmark extent, reference frame")
    wait_s: float = Field(600.0, ge=0.0, le=86400.0, description="how long to wait for the reference frame's landmarks")


@register
class FaceCrop(Node):
    kind = "face.crop"
    summary = "crop + scale the face (one global metric size), depth shifted to the nose depth D0, in mm"
    Params = CropParams
    inputs = {"landmarks": "ChunkRef('landmarks', ...): reads raw/color, raw/depth, landmarks/*"}
    outputs = {"face": "ChunkRef('crop', ...): crop/color, /depth, /mask, /landmarks, /transform, /ok"}

    async def process(self, port: str, item: ChunkRef) -> list[Output]:
        store = self.ctx.store()
        ok = np.asarray(store.read("landmarks/ok", item.start, item.stop), bool)
        norm = await self._normalisation(store) if ok.any() else None
        return [await self.run_blocking(self._chunk, item, norm, ok)]

    def _fx(self, store) -> float:
        intr = store.attrs.get("intrinsics") or {}
        return float(intr.get("fx") or store.array("raw/color").shape[2])  # no intrinsics: ~53 deg hfov

    def _wanted(self, norm: dict | None) -> bool:
        p = self.params
        return bool(norm) and norm.get("size") == p.size and norm.get("face_depth_mm") == p.face_depth_mm \
            and norm.get("margin") == p.margin and "d0_mm" in norm

    async def _normalisation(self, store) -> vcrop.Normalisation:
        have = store.attrs.get("normalisation")
        if self._wanted(have):
            return vcrop.Normalisation.from_dict(have)
        deadline = time.monotonic() + self.params.wait_s
        while True:
            found = await self.run_blocking(self._reference, store)
            if isinstance(found, vcrop.Normalisation):
                # a freshly opened store: zarr writes its in-memory view of all root attributes,
                # so an old handle would undo attributes other nodes wrote since it was opened
                fresh = self.ctx.store()
                again = fresh.attrs.get("normalisation")
                if not self._wanted(again) or again.get("d0_mm") != found.d0_mm:
                    fresh.update_attrs(normalisation=found.to_dict())
                return found
            if time.monotonic() > deadline:
                raise StoreError(f"face.crop: no reference frame for D0 after {self.params.wait_s:.0f} s "
                                 f"(landmarks of frame {found} not written yet)")
            await asyncio.sleep(0.2)

    def _reference(self, store) -> vcrop.Normalisation | int:
        """The normalisation from the first usable frame, or the first frame still not landmarked."""
        ok = np.asarray(store.read("landmarks/ok"), bool)
        done = np.asarray(store.read("landmarks/done"), bool) if store.has("landmarks/done") else np.ones_like(ok)
        fx = self._fx(store)
        for i in range(len(ok)):
            if not done[i]:
                return i
            if not ok[i]:
                continue
            pts = store.read("landmarks/points", i, i + 1)[0]
            depth = store.read("raw/depth", i, i + 1)[0]
            norm = vcrop.reference(pts, depth, fx, self.params.size, self.params.face_depth_mm,
                                   self.params.margin, frame=i)
            if norm is not None:
                return norm
        raise StoreError("face.crop: no frame has both landmarks and a depth reading at the nose tip")

    def _chunk(self, item: ChunkRef, norm: vcrop.Normalisation | None, lm_ok: np.ndarray) -> Output:
        store = self.ctx.store()
        a, b, s = item.start, item.stop, self.params.size
        n_cap = store.array("raw/color").shape[0]
        color = np.zeros((b - a, s, s, 3), np.uint8)
        depth = np.zeros((b - a, s, s), np.uint16)
        mask = np.zeros((b - a, s, s), bool)
        lms = np.full((b - a, 70, 2), np.nan, np.float32)
        tr = np.full((b - a, 4), np.nan, np.float32)
        ok = np.zeros(b - a, bool)
        if norm is not None:
            fx = self._fx(store)
            rgb, dep = store.read("raw/color", a, b), store.read("raw/depth", a, b)
            pts = store.read("landmarks/points", a, b)
            for i in np.flatnonzero(lm_ok):
                r = vcrop.crop_frame(rgb[i], dep[i], pts[i], norm, fx)
                color[i], depth[i], mask[i], lms[i], tr[i], ok[i] = (r.color, r.depth, r.mask, r.landmarks,
                                                                     r.transform, r.ok)
        for name, data, shape, dtype, fill in (
            ("crop/color", color, (s, s, 3), np.uint8, 0), ("crop/depth", depth, (s, s), np.uint16, 0),
            ("crop/mask", mask, (s, s), bool, False), ("crop/landmarks", lms, (70, 2), np.float32, np.nan),
            ("crop/transform", tr, (4,), np.float32, np.nan), ("crop/ok", ok, (), bool, False),
        ):
            store.ensure_array(name, n_cap, shape, dtype, fill_value=fill)
            store.write(name, a, data)
        dropped = int(lm_ok.sum() - ok.sum())
        if dropped:
            self.ctx.report("crop.skipped", chunk=item.key, skipped=dropped, reason="no depth at the nose tip")
        return Output("face", ChunkRef("crop", a, b))
