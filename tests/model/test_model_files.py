"""Model files are loaded without running code from them (issue 14, "Model files"): weights +
generator.json by default, TorchScript only when asked for, ONNX through ONNX Runtime; crafted
files are refused in facesynth's own words."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from facesynth.errors import ModelFileError
from facesynth.model.export import export_generator, load_exported
from facesynth.model.generator import UNetGenerator

META = {"d0_mm": 600.0, "face_depth_mm": 80.0, "near_mm": 20.0}


class WritesMarker:
    """A pickle that, if unpickled with plain pickle, creates a file: the 'code' in a model file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory):
    torch.manual_seed(0)
    gen = UNetGenerator(32, 4)
    with torch.no_grad():  # a large depth gain: tanh saturates to +-1, a mix of face and background
        gen.ups[0][1].weight[:, 3] *= 400.0
        gen.ups[0][1].bias[3] = -3.0
    out = tmp_path_factory.mktemp("model") / "exp"
    export_generator(gen, out, dict(META), onnx=True)
    return out


@pytest.fixture
def export(tmp_path, exported_once):
    shutil.copytree(exported_once, tmp_path / "exp")  # each test may damage its own copy
    return tmp_path / "exp"


def _drawings(n: int = 3) -> np.ndarray:
    return (torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1).numpy()


def test_weights_torchscript_and_onnx_give_the_same_output(export):
    x = _drawings()
    by_weights = load_exported(export)  # the default: generator.pt + generator.json
    assert by_weights.format == "weights" and by_weights.path.name == "generator.pt"
    assert isinstance(by_weights.module, torch.nn.Module)
    traced = torch.jit.load(str(export / "generator.ts.pt"))  # the reference, loaded directly
    with torch.no_grad():
        ref = traced(torch.from_numpy(x)).numpy()
    w = by_weights(x)
    assert (w[:, 3] <= -1.0).any() and (w[:, 3] > -1.0).any()
    np.testing.assert_allclose(w, ref, atol=1e-5)
    np.testing.assert_allclose(load_exported(export, "torchscript")(x), ref, atol=1e-5)
    np.testing.assert_allclose(load_exported(export, "onnx")(x), ref, atol=1e-4)
    meta = json.loads((export / "generator.json").read_text())
    assert (meta["arch"]["size"], meta["arch"]["ngf"], meta["arch"]["in_ch"], meta["arch"]["out_ch"]) == (32, 4, 1, 4)


def test_architecture_options_travel_in_generator_json(tmp_path):
    import inspect

    params = inspect.signature(UNetGenerator.__init__).parameters
    options = {k: v for k, v in (("upsample", "resize"), ("norm", "instance")) if k in params}
    torch.manual_seed(3)
    gen = UNetGenerator(32, 4, dropout=0.0, **options).eval()
    export_generator(gen, tmp_path / "exp", dict(META), onnx=False)
    arch = json.loads((tmp_path / "exp" / "generator.json").read_text())["arch"]
    assert set(arch) == set(params) - {"self"} and arch["dropout"] == 0.0
    assert all(arch[k] == v for k, v in options.items())
    x = torch.from_numpy(_drawings())
    with torch.no_grad():
        ref = gen(x).numpy()
    from facesynth.model.generator import apply_background_mask
    np.testing.assert_allclose(load_exported(tmp_path / "exp")(x).numpy(), apply_background_mask(ref), atol=1e-5)


def test_crafted_pickle_is_refused_and_never_runs(tmp_path, export):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"gen.downs.0.0.weight": WritesMarker(marker)}, protocol=2)
    (export / "generator.pt").write_bytes(evil)
    (export / "generator.ts.pt").write_bytes(evil)
    meta = json.loads((export / "generator.json").read_text())
    meta.pop("weights_sha256")  # a crafted export would not carry a matching hash either
    (export / "generator.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError) as err:
        load_exported(export)
    text = str(err.value)
    assert "generator.pt" in text and "never code" in text
    assert "weights_only" not in text  # not torch's advice to load it with code enabled
    assert not marker.exists()
    from facesynth.model.checkpoint import load_checkpoint
    (tmp_path / "ck.pt").write_bytes(pickle.dumps({"config": {}, "epoch": 0, "step": 0, "G": WritesMarker(marker)}))
    with pytest.raises(ModelFileError) as err:
        load_checkpoint(tmp_path / "ck.pt")
    assert "weights_only" not in str(err.value) and not marker.exists()
    pickle.loads(evil)  # the file really was code: plain pickle runs it
    assert marker.exists()


def test_torchscript_is_opt_in_and_a_changed_weights_file_is_caught(tmp_path, export):
    with pytest.raises(ModelFileError, match="TorchScript runs code.*format: torchscript"):
        load_exported(export / "generator.ts.pt")
    assert load_exported(export / "generator.ts.pt", "torchscript").format == "torchscript"
    legacy = tmp_path / "legacy"  # an export from before weights files: TorchScript only
    legacy.mkdir()
    for name in ("generator.ts.pt", "generator.json"):
        shutil.copy(export / name, legacy / name)
    with pytest.raises(ModelFileError, match="only TorchScript.*Re-export"):
        load_exported(legacy)
    other = UNetGenerator(32, 4).state_dict()  # same shapes, other values: the hash tells
    torch.save(other, export / "generator.pt")
    with pytest.raises(ModelFileError, match="sha256"):
        load_exported(export)


def test_model_eval_cli_refuses_crafted_files_and_trusts_torchscript_only_when_told(tmp_path, export, capsys):
    from facesynth.cli import main
    from facesynth.model.toy_data import write_toy_store

    write_toy_store(tmp_path / "s.zarr", n_train=2, n_eval=2, size=32)
    args = ["model", "eval", "--store", str(tmp_path / "s.zarr"), "--no-lpips", "--json"]
    assert main([*args, "--model", str(export), "--trust-torchscript"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "torchscript"
    marker = tmp_path / "pwned"
    (export / "generator.pt").write_bytes(pickle.dumps({"w": WritesMarker(marker)}, protocol=2))
    assert main([*args, "--model", str(export)]) == 1
    err = capsys.readouterr().err
    assert "generator.pt" in err and "Traceback" not in err and "weights_only" not in err
    assert not marker.exists()


def test_live_generator_runs_each_format_alike(export):
    from facesynth.live.output_nodes import Generator, LiveGenerator

    assert Generator.Params().format == "auto"  # on CPU: generator.onnx when the export has it (issue 22)
    assert LiveGenerator(str(export)).format == "onnx"
    pts = np.random.default_rng(0).uniform(4, 28, size=(70, 2)).astype(np.float32)
    outs = {}
    for fmt in ("weights", "onnx", "torchscript"):
        gen = LiveGenerator(str(export), format=fmt)
        outs[fmt], ms = gen.infer(pts)
        assert ms > 0 and outs[fmt].shape == (4, 32, 32)
    onnx = LiveGenerator(str(export), format="onnx")
    assert onnx.exported.module.session.get_session_options().intra_op_num_threads == 2
    np.testing.assert_allclose(outs["weights"], outs["torchscript"], atol=1e-5)
    np.testing.assert_allclose(outs["onnx"], outs["weights"], atol=1e-4)


def test_a_crafted_generator_json_cannot_make_it_allocate_or_build_anything_else(export):
    meta_path = export / "generator.json"
    meta = json.loads(meta_path.read_text())
    for arch, match in (({**meta["arch"], "ngf": 10**7}, "ngf=10000000 is outside"),
                        ({**meta["arch"], "size": 2**20}, "size=1048576 is outside"),
                        ({**meta["arch"], "evil": "x"}, "unknown generator arguments"),
                        ({**meta["arch"], "ngf": [4]}, "not plain values"),
                        ("UNetGenerator", "must be a dict")):
        meta_path.write_text(json.dumps({**meta, "arch": arch}))
        with pytest.raises(ModelFileError, match=match):
            load_exported(export)
    meta_path.write_text("{not json")
    with pytest.raises(ModelFileError, match="generator.json is damaged"):
        load_exported(export)
