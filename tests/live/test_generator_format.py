"""Which format live.generator runs by default, and ONNX external data kept inside the export.

`format: auto` (the default) runs generator.onnx in ONNX Runtime on CPU when the export has it
(ONNX is data, not code), else the weights; its frames equal the weights path's (PyTorch) to
float32 rounding. An ONNX file whose external data lies outside its export directory (../, an
absolute path, a symlink out) is refused with an error that says so.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from live_helpers import META, SIZE, landmark_sets

from facesynth.errors import ModelFileError
from facesynth.live.output_nodes import LiveGenerator
from facesynth.model.export import default_format, export_generator, load_exported
from facesynth.model.generator import UNetGenerator


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The same tiny generator exported with and without generator.onnx."""
    torch.manual_seed(0)
    gen = UNetGenerator(SIZE, 4).eval()
    root = tmp_path_factory.mktemp("exports")
    export_generator(gen, root / "with_onnx", dict(META), onnx=True, torchscript=False)
    export_generator(gen, root / "weights_only", dict(META), onnx=False, torchscript=False)
    return root


def test_default_format_prefers_onnx_on_cpu(exports):
    with_onnx, weights_only = exports / "with_onnx", exports / "weights_only"
    assert default_format(with_onnx) == "onnx"
    assert default_format(with_onnx / "generator.json") == "onnx"
    assert default_format(with_onnx, device="cuda") == "weights"  # ONNX Runtime here is CPU-only
    assert default_format(weights_only) == "weights"
    assert default_format(with_onnx / "generator.pt") == "weights"  # a file named is what it is
    assert default_format(with_onnx / "generator.onnx") == "onnx"


def test_auto_runs_onnx_and_gives_the_weights_frames(exports):
    auto = LiveGenerator(str(exports / "with_onnx"), threads=1)
    weights = LiveGenerator(str(exports / "with_onnx"), threads=1, format="weights")
    assert auto.format == "onnx" and type(auto.module).__name__ == "OnnxGenerator"
    assert weights.format == "weights" and isinstance(weights.module, torch.nn.Module)
    assert LiveGenerator(str(exports / "weights_only"), threads=1).format == "weights"
    for pts in landmark_sets(4, seed=3):
        a, _ = auto.infer(pts)
        b, _ = weights.infer(pts)
        assert a.shape == b.shape == (4, SIZE, SIZE)
        close = np.abs(a - b) < 1e-4  # float32 rounding; a pixel on the mask's edge may flip
        assert close.mean() > 0.999, f"ONNX Runtime and PyTorch differ on {1 - close.mean():.2%} of values"


def _onnx_with_external_data(export_dir, location: str):
    """generator.onnx in `export_dir` whose only weight is stored as external data at `location`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 1, SIZE, SIZE), 0.5, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(SIZE * SIZE * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["drawing", "w"], ["rgbd"])], "g",
                              [helper.make_tensor_value_info("drawing", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
                              [helper.make_tensor_value_info("rgbd", TensorProto.FLOAT, [1, 1, SIZE, SIZE])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (export_dir / "generator.onnx").write_bytes(model.SerializeToString())


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_export_is_refused(tmp_path, where):
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.full(SIZE * SIZE, 7.0, np.float32).tobytes())
    (export_dir / "generator.json").write_text('{"size": %d}' % SIZE)
    location = {"parent": "../secret.bin", "absolute": str(secret), "symlink": "weights.bin"}[where]
    if where == "symlink":
        os.symlink(secret, export_dir / "weights.bin")
    _onnx_with_external_data(export_dir, location)
    with pytest.raises(ModelFileError, match="outside (its|the) export directory"):
        load_exported(export_dir, "onnx")
    with pytest.raises(ModelFileError, match="outside (its|the) export directory"):
        LiveGenerator(str(export_dir))  # the default picks the ONNX file: refused, not read


@pytest.mark.parametrize("replicas", [1, 2, 64])
async def test_onnx_threads_share_the_cores_among_replicas(exports, replicas):
    """threads 0: each replica's ONNX Runtime gets the usable cores divided among the replicas (at
    least one), so two replicas on two cores do not fight over them."""
    from facesynth.nodes.base import NodeContext
    from facesynth.nodes.registry import get

    cls = get("live.generator")
    ctx = NodeContext(node_id="g", kind="live.generator", replica=0, replicas=replicas, reporter=lambda *a: None)
    node = cls(cls.Params.model_validate({"model": str(exports / "with_onnx"), "warmup": 1}), ctx)
    await node.setup()
    opts = node.gen.module.session.get_session_options()
    assert opts.intra_op_num_threads == max(1, len(os.sched_getaffinity(0)) // replicas)
