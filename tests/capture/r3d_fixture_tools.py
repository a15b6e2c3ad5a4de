"""Test code: the real iPhone TrueDepth sequence packed as a Record3D export, the layout public readers use.

Written into a test's tmp_path, never committed. `metadata`: K column-major (K.T flattened), w, h,
dw, dh, fps, poses, frameTimestamps; `rgbd/<n>.jpg`: the source JPEG bytes unchanged;
`rgbd/<n>.depth`: float32 metres (raw uint16 x 0.0153 mm / 1000) LZFSE-compressed with the `lzfse`
package; `rgbd/<n>.conf`: LZFSE uint8 confidence (2 where measured, 0 where not).
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

from facesynth.depth.testdata_realdepth import realdata_root

SEQUENCE = realdata_root() / "truedepth_face_sequence"
N_FRAMES = 34
SCALE_MM = 0.0153  # info.json `scale`: raw units -> mm
# colour focal/pp as in info.json (the README's values)
FOCAL, PP = 957.366, (358.7454, 640.242)
W, H, DW, DH = 720, 1280, 360, 640


def source_depth_mm(i: int) -> np.ndarray:
    """The source depth map of frame i in millimetres (float64, 0 = no reading), at 360x640."""
    return cv2.imread(str(SEQUENCE / f"depth_{i:02d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) * SCALE_MM


def numbering(n: int = N_FRAMES, gap_after: int = 16, gap: int = 3) -> list[int]:
    """Frame numbers with a hole: 0..gap_after, then on from gap_after + 1 + gap (not contiguous)."""
    return [i if i <= gap_after else i + gap for i in range(n)]


def k_column_major() -> list[float]:
    k = np.array([[FOCAL, 0, PP[0]], [0, FOCAL, PP[1]], [0, 0, 1]], np.float64)
    return k.T.flatten().tolist()  # the export stores K column-major


def export_members(count: int = N_FRAMES, numbers: list[int] | None = None, conf: bool = True,
                   sizes_in_metadata: bool = True) -> dict[str, bytes]:
    """{member name: bytes} of an export of the first `count` frames of the real sequence."""
    import lzfse

    numbers = numbers if numbers is not None else numbering(count)
    last = max(numbers) + 1
    meta = {"K": k_column_major(), "w": W, "h": H, "fps": 1,
            "poses": [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]] * last,
            "frameTimestamps": [float(n) for n in range(last)]}
    if sizes_in_metadata:
        meta.update(dw=DW, dh=DH)
    members = {"metadata": json.dumps(meta).encode()}
    for i, n in zip(range(count), numbers):
        members[f"rgbd/{n}.jpg"] = (SEQUENCE / f"color_{i:02d}.jpg").read_bytes()
        depth_m = (source_depth_mm(i) / 1000.0).astype("<f4")
        members[f"rgbd/{n}.depth"] = lzfse.compress(depth_m.tobytes())
        if conf:
            members[f"rgbd/{n}.conf"] = lzfse.compress(np.where(depth_m > 0, 2, 0).astype(np.uint8).tobytes())
    return members


def write_r3d(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def write_folder(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


if __name__ == "__main__":  # pack the sequence by hand: python r3d_fixture_tools.py out.r3d
    write_r3d(Path(sys.argv[1]), export_members())
