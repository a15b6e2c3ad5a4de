"""Model exports someone else made (issue 23, "Export files"): a crafted generator.json, weights
file or ONNX graph is refused, naming the file and the problem, before anything is built, read or
run in this process. `model eval` runs in a child process (exit 1, no traceback, < 10 s,
< 500 MB); the live nodes read the same files through the same checks."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facesynth.errors import ModelFileError
from facesynth.model.arch import generator_memory
from facesynth.model.export import export_generator
from facesynth.model.generator import UNetGenerator

sys.path.insert(0, str(Path(__file__).parents[1] / "spine"))
from cli_child import assert_refused, run_cli  # noqa: E402

S = 32


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model") / "exp"
    export_generator(UNetGenerator(S, 4, upsample="resize", norm="instance"), out,
                     {"d0_mm": 600.0, "face_depth_mm": 80.0, "crop_mm": 200.0, "crop_size": S}, torchscript=False)
    return out


@pytest.fixture
def export(tmp_path, exported_once):
    shutil.copytree(exported_once, tmp_path / "exp")  # each test damages its own copy
    return tmp_path / "exp"


def model_eval(export_dir: Path, *extra: str) -> tuple[int, str, float, float]:
    """`facesynth model eval` in a child; the store does not exist: the export is refused first."""
    return run_cli(["model", "eval", "--model", str(export_dir), "--store", str(export_dir / "no.zarr"),
                    "--no-lpips", *extra])


def test_parameter_count_from_the_arch_is_torchs_own():
    """generator_memory counts from the arch alone what torch builds (small nets for real, the
    issue's 19 G-parameter net on the meta device, where nothing is allocated)."""
    archs = [dict(size=32, ngf=3, upsample=u, norm=m) for u in ("transpose", "resize")
             for m in ("batch", "instance", "none")] + [dict(size=64, ngf=5, in_ch=2, out_ch=3)]
    for arch in archs:
        net = UNetGenerator(**arch)
        mem = generator_memory(arch)
        assert mem.parameters == sum(p.numel() for p in net.parameters()), arch
        assert mem.state_bytes == sum(v.numel() * v.element_size() for v in net.state_dict().values()), arch
    huge = dict(size=4096, ngf=1024, upsample="resize", norm="instance")  # ngf 1024, size 4096 (issue 23)
    with torch.device("meta"):
        net = UNetGenerator(**huge)
    assert generator_memory(huge).parameters == sum(p.numel() for p in net.parameters())
    assert 19.0e9 < generator_memory(huge).parameters < 19.3e9  # the issue measured 19 G parameters, 71 GiB


def test_arch_defaults_are_the_generators_own():
    """arch.py checks an arch without importing torch, from its own copy of the defaults."""
    from facesynth.model.arch import ARCH_DEFAULTS
    from facesynth.model.generator import constructor_params

    assert {name: p.default for name, p in constructor_params().items()} == ARCH_DEFAULTS


def _nest(depth: int) -> str:
    return '{"size": 32, "x": ' + "[" * depth + "]" * depth + "}"


# name -> (change to generator.json: a dict merged in, or the whole text), words in the message
META_CASES = {
    "nested_100000": (_nest(100_000), "nests 100001 levels deep, more than the limit of 32"),
    "size_65536": ({"size": 65536}, "'size' is 65536, it must be an integer in [32, 4096]"),
    "size_negative": ({"size": -256}, "'size' is -256, it must be an integer in [32, 4096]"),
    "size_huge_integer": ('{"size": ' + "9" * 400 + "}", "'size' is an integer of 400 digits"),
    "size_not_a_power_of_two": ({"size": 48}, "must be a power of two"),
    "crop_size_65536": ({"crop_size": 65536}, "'crop_size' is 65536, it must be an integer in [16, 4096]"),
    "d0_not_finite": ('{"size": 32, "d0_mm": NaN}', "'d0_mm' is nan, it must be a number"),
    "arch_19G_parameters": ({"size": 4096, "arch": {"size": 4096, "ngf": 1024, "upsample": "resize", "norm": "instance"}},
                            "(size 4096, ngf 1024: 19.15 G parameters) needs about"),
    "arch_ngf_512": ({"size": 256, "arch": {"size": 256, "ngf": 512}}, "more than the memory budget of 4.0 GiB"),
    "arch_size_differs": ({"arch": {"size": 64, "ngf": 4}}, "'size' is 32 but the arch's size is 64"),
    "arch_three_channels": ({"arch": {"size": 32, "ngf": 4, "out_ch": 3}}, "maps 1 channel(s) to 3"),
    "landmarks_wrong_shape": ({"landmark_stats": {"size": 32, "mean": [[1, 2]] * 69}}, "must be 70 points"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_crafted_generator_json(export, case):
    change, words = META_CASES[case]
    meta_path = export / "generator.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, **change}) if isinstance(change, dict) else change)
    assert_refused(model_eval(export), 1, str(meta_path), words)


def test_memory_budget_is_a_parameter(export):
    assert_refused(model_eval(export, "--memory-budget-gb", "0.0001"), 1, "more than the memory budget of 0.1 MiB")
    assert_refused(model_eval(export, "--memory-budget-gb", "0"), 2, "--memory-budget-gb must be above 0")


def test_weights_file_larger_than_its_arch_is_refused_unread(export):
    """A 20 GB (sparse) generator.pt is refused from its size: not hashed, not loaded."""
    with open(export / "generator.pt", "r+b") as fh:
        fh.truncate(20 << 30)
    want_mib = generator_memory(json.loads((export / "generator.json").read_text())["arch"]).state_bytes >> 20
    assert_refused(model_eval(export), 1, "generator.pt: the model file is 20.0 GB, more than the limit",
                   f"weights of about {want_mib + 1} MiB")


def test_generator_json_that_is_not_a_regular_file(export):
    (export / "generator.json").unlink()
    (export / "generator.json").symlink_to("/dev/zero")
    assert_refused(model_eval(export), 1, "generator.json: the generator.json is a device, not a regular file")


# ---- ONNX ------------------------------------------------------------------------------------
def onnx_graph(bomb: str | None = None, out_ch: int = 4, external: str | None = None):
    """A drawing (N,1,S,S) -> 1x1 Conv -> RGBD (N,out_ch,S,S) graph, with an allocation `bomb`:
    "constant_shape" (ConstantOfShape of a constant 10^5 x 10^5 x 100), "from_values" (of a size
    computed from the drawing's values), "shape_arith" (of the batch size x 10^10: unknown to
    shape inference, found only by running it), and the Conv weights as `external` data."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    def const(name, arr):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr))

    one = numpy_helper.from_array(np.array([1.0], np.float32))
    w = numpy_helper.from_array(np.full((out_ch, 1, 1, 1), 0.5, np.float32), "w")
    nodes = [helper.make_node("Conv", ["drawing", "w"], ["conv"])]
    if bomb == "constant_shape":
        nodes += [const("shape", np.array([100_000, 100_000, 100], np.int64))]
    elif bomb == "from_values":
        nodes += [helper.make_node("ReduceMax", ["drawing"], ["m"], keepdims=0),
                  const("k", np.array([1e9], np.float32)), helper.make_node("Mul", ["m", "k"], ["mk"]),
                  helper.make_node("Cast", ["mk"], ["shape"], to=T.INT64)]
    elif bomb == "shape_arith":
        nodes += [helper.make_node("Shape", ["drawing"], ["s"], start=0, end=1),
                  const("k", np.array([10**10], np.int64)), helper.make_node("Mul", ["s", "k"], ["shape"])]
    if bomb:
        nodes += [helper.make_node("ConstantOfShape", ["shape"], ["big"], value=one),
                  helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                  helper.make_node("Add", ["conv", "total"], ["rgbd"])]
    else:
        nodes += [helper.make_node("Identity", ["conv"], ["rgbd"])]
    if external:
        w.ClearField("raw_data")
        w.data_location = T.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", "16")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("drawing", T.FLOAT, ["n", 1, S, S])],
                              [helper.make_tensor_value_info("rgbd", T.FLOAT, ["n", out_ch, S, S])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


ONNX_CASES = {
    "constant_of_shape_3725_gib": (dict(bomb="constant_shape"), "its tensors need at least 3725.3 GiB"),
    "allocation_from_input_values": (dict(bomb="from_values"), "(ConstantOfShape) allocates a tensor whose size "
                                                               "is computed from the input's values at run time"),
    "allocation_found_by_first_run": (dict(bomb="shape_arith"), "its first run (in a process of its own) needs more "
                                                                "memory than the budget of 4.0 GiB"),
    "output_not_rgbd": (dict(out_ch=3), "its output 'rgbd' is (?,3,32,32), not the documented float (N,4,32,32)"),
    "external_data_absolute": (dict(external="/etc/passwd"), "keeps its data in '/etc/passwd', outside the export"),
    "external_data_dotdot": (dict(external="../secret.bin"), "keeps its data in '../secret.bin', outside the export"),
    "not_onnx": (None, "not an ONNX model"),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_crafted_onnx(export, case):
    import onnx

    kwargs, words = ONNX_CASES[case]
    if kwargs is None:
        (export / "generator.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + bytes(100))
    else:
        onnx.save(onnx_graph(**kwargs), str(export / "generator.onnx"))
    (export.parent / "secret.bin").write_bytes(bytes(16))
    assert_refused(model_eval(export, "--onnx"), 1, str(export / "generator.onnx"), words)


def test_real_export_passes_and_first_run_is_time_boxed(export):
    """The checks pass what facesynth exports (its first run: (1,4,S,S)); a first run that does
    not end in time is stopped and refused, in the child process, not here."""
    from facesynth.model.onnx_check import check_onnx

    arch = json.loads((export / "generator.json").read_text())["arch"]
    report = check_onnx(export / "generator.onnx", S, arch)
    assert report["shapes"] == [[1, 4, S, S]] and report["peak_rss_kb"] < 500 * 1024
    with pytest.raises(ModelFileError, match=r"did not finish within 0.01 s"):
        check_onnx(export / "generator.onnx", S, arch, first_run_timeout_s=0.01)
    with pytest.raises(ModelFileError, match=r"not the documented float \(N,1,64,64\)"):
        check_onnx(export / "generator.onnx", 64, None)  # generator.json's size is what it must match


# ---- the live nodes read the same files ------------------------------------------------------
def test_live_generator_refuses_crafted_export_at_setup(export):
    """Was: OpenCV out of memory drawing a 65536 px canvas, retried 3 times. Now refused at once,
    not retryable (the same bytes give the same answer)."""
    from facesynth.live.output_nodes import LiveGenerator

    meta_path = export / "generator.json"
    meta = json.loads(meta_path.read_text())
    for fmt in ("weights", "onnx"):
        meta_path.write_text(json.dumps({**meta, "size": 65536}))
        with pytest.raises(ModelFileError, match="'size' is 65536") as err:
            LiveGenerator(str(export), format=fmt)
        assert err.value.retryable is False


@pytest.mark.parametrize("change, words", [
    ({"landmark_stats": {"size": 0, "mean": []}}, "landmark_stats: 'size' is 0"),
    ('{"size": 32, "landmark_stats": ' + "[" * 50_000 + "]" * 50_000 + "}", "nests 50001 levels deep"),
], ids=["landmark_stats_size_0", "nested_50000"])
def test_live_condition_refuses_crafted_generator_json(tmp_path, export, change, words):
    """A live graph (msgpack in -> live.condition) run with --local: the node's setup fails naming
    the file, the run exits 1."""
    meta_path = export / "generator.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, **change}) if isinstance(change, dict) else change)
    graph = tmp_path / "live.yaml"
    graph.write_text("version: 1\nname: hostile_live\ndefaults: {queue: 1, policy: latest, max_restarts: 0}\nnodes:\n"
                     "  - {id: net, kind: live.msgpack_in, params: {host: 127.0.0.1, port: 0, size: 32}}\n"
                     f"  - {{id: condition, kind: live.condition, params: {{model: '{export}'}}, "
                     "inputs: {landmarks: net/landmarks}}\n")
    assert_refused(run_cli(["graph", "run", str(graph), "--local", "--quiet"], cwd=tmp_path), 1,
                   "node 'condition' failed on chunk setup: ModelFileError", str(meta_path), words)
