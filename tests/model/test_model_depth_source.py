"""An export trained on estimated depth says so (issue 21, item 5): generator.json records the
store's `depth_source`, and `facesynth model eval` names it beside the depth figures."""
from __future__ import annotations

import json

import pytest

from facesynth.errors import ModelFileError
from facesynth.model.export import load_exported
from facesynth.model.nodes import Pix2PixParams, train_from_store
from facesynth.model.toy_data import write_toy_store
from facesynth.store.frame_store import FrameStore

pytestmark = pytest.mark.usefixtures("one_thread")


def _depth_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith("depth_")]


def test_export_records_the_depth_source_and_model_eval_prints_it(tmp_path, capsys):
    from facesynth.cli import main

    mesh = write_toy_store(tmp_path / "mesh.zarr", n_train=4, n_eval=2, size=32)
    mesh.update_attrs(depth_source="face_mesh")  # what capture.video writes
    params = Pix2PixParams(size=32, ngf=4, ndf=4, epochs=1, decay_epochs=0, batch_size=4, lpips=False,
                           device="cpu", onnx=False)
    res = train_from_store(str(tmp_path / "mesh.zarr"), params, None, tmp_path / "m", lambda *a, **k: None)
    meta = json.loads((tmp_path / "m" / "export" / "generator.json").read_text())
    assert meta["depth_source"] == "face_mesh" and load_exported(res["dir"]).meta["depth_source"] == "face_mesh"

    assert main(["model", "eval", "--model", res["dir"], "--store", str(tmp_path / "mesh.zarr"), "--no-lpips"]) == 0
    lines = _depth_lines(capsys.readouterr().out)
    assert {line.split()[0] for line in lines} == {"depth_mae_mm", "depth_roughness_ratio"}
    assert all(line.endswith("(depth estimated from the face mesh)") for line in lines), lines

    sensor = write_toy_store(tmp_path / "kinect.zarr", n_train=4, n_eval=2, size=32)
    sensor.update_attrs(depth_source="azure_kinect\x1b[31m")  # text from a file reaches no terminal raw
    assert main(["model", "eval", "--model", res["dir"], "--store", str(tmp_path / "kinect.zarr"),
                 "--no-lpips"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert all(line.endswith("(depth measured by azure_kinect\\x1b[31m; trained on: depth estimated from the "
                             "face mesh)") for line in _depth_lines(out))
    assert main(["model", "eval", "--model", res["dir"], "--store", str(tmp_path / "kinect.zarr"),
                 "--no-lpips", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert (js["depth_source"], js["trained_depth_source"]) == ("azure_kinect\x1b[31m", "face_mesh")


def test_an_export_without_depth_source_still_loads_and_a_wrong_one_is_refused(tmp_path, capsys):
    from facesynth.cli import main

    write_toy_store(tmp_path / "s.zarr", n_train=4, n_eval=2, size=32)  # a store from before depth_source
    params = Pix2PixParams(size=32, ngf=4, ndf=4, epochs=1, decay_epochs=0, batch_size=4, lpips=False,
                           device="cpu", onnx=False)
    res = train_from_store(str(tmp_path / "s.zarr"), params, None, tmp_path / "m", lambda *a, **k: None)
    meta_path = tmp_path / "m" / "export" / "generator.json"
    assert "depth_source" not in json.loads(meta_path.read_text())
    assert main(["model", "eval", "--model", res["dir"], "--store", str(tmp_path / "s.zarr"), "--no-lpips"]) == 0
    assert all(line.endswith("(depth source not recorded)") for line in _depth_lines(capsys.readouterr().out))
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "depth_source": ["face_mesh"]}))
    with pytest.raises(ModelFileError, match="'depth_source' must be a short text"):
        load_exported(res["dir"])
    assert FrameStore.open(str(tmp_path / "s.zarr"), mode="r").attrs.get("depth_source") is None
