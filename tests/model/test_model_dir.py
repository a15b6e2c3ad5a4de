"""What `--restart` removes from a model directory, and which directories are never used or touched
(issue 13, items 2 and 4 on the model side)."""
from __future__ import annotations

import pytest

from facesynth.errors import ModelFileError
from facesynth.model.model_dir import MARKER, prepare_model_dir

STORE_A = {"store_id": "a" * 32, "path": "/data/a.zarr"}
STORE_B = {"store_id": "b" * 32, "path": "/data/a.zarr"}


def _trained(d):
    for rel in ("checkpoints/latest.pt", "checkpoints/step_00000300.pt", "checkpoints/epoch_0003.pt",
                "checkpoints/best.pt", "previews/step_00000300.png", "previews/epoch_0003.png", "export/generator.pt", "export/generator.json",
                "export/generator.ts.pt", "export/generator.onnx"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(b"x")


def test_restart_removes_only_what_facesynth_wrote(tmp_path):
    d = tmp_path / "s.zarr.model"
    assert prepare_model_dir(d, STORE_A, restart=False) == "new" and (d / MARKER).is_file()
    _trained(d)
    (d / "notes.txt").write_text("mine")
    (d / "export" / "README").write_text("mine too")
    assert prepare_model_dir(d, STORE_A, restart=True) == "kept"  # same store: a restarted replica
    assert (d / "checkpoints" / "latest.pt").exists()
    with pytest.raises(ModelFileError, match="another store.*--restart.*out_dir"):
        prepare_model_dir(d, STORE_B, restart=False)
    assert (d / "checkpoints" / "latest.pt").exists()
    assert prepare_model_dir(d, STORE_B, restart=True) == "restarted"
    left = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert left == ["export/README", MARKER, "notes.txt"]
    assert prepare_model_dir(d, STORE_B, restart=False) == "kept"


def test_a_directory_that_is_no_model_dir_is_never_used_or_deleted(tmp_path):
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    (home / "checkpoints" / "thesis.pt").write_bytes(b"precious")
    (home / "photos").mkdir()
    for restart in (False, True):
        with pytest.raises(ModelFileError, match="not a facesynth model directory"):
            prepare_model_dir(home, STORE_A, restart=restart)
    assert (home / "checkpoints" / "thesis.pt").read_bytes() == b"precious" and (home / "photos").is_dir()
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ModelFileError, match="is a file"):
        prepare_model_dir(afile, STORE_A, restart=True)
    legacy = tmp_path / "old.model"  # made before markers: only facesynth's folders in it
    _trained(legacy)
    assert prepare_model_dir(legacy, STORE_A, restart=True) == "restarted"
    assert not list(legacy.rglob("*.pt"))
