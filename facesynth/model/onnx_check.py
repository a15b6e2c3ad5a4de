"""generator.onnx checked before ONNX Runtime is trusted with it in this process.

ONNX Runtime runs whatever graph the file holds: a graph can allocate from values computed at run
time (ConstantOfShape of a huge or input-dependent shape, an Expand or a Tile to a computed size)
or point its tensors' external data at any file of the machine; and parsing and inferring a crafted
graph is itself work on hostile bytes. So this process only checks the file's size from its
metadata (at most the arch's weights, when generator.json has an arch), and everything else runs
in a child process (onnx_first_run.py) whose memory is capped at the budget (RLIMIT_AS) and which
is stopped after a time box, so nothing a graph does can take this process down:

1. external data only in files inside the export directory;
2. `onnx.checker`, then shape inference (strict, with data propagation);
3. one input (N,1,S,S) and one output, the documented RGBD (N,4,S,S), S from generator.json;
4. no control flow, local functions or foreign operator domains; every operator that allocates
   from a tensor's values (ConstantOfShape, Expand, Tile, Range, Resize's sizes, Pad, OneHot...)
   takes them from constants or shapes only, never from the input's values; the tensors whose
   shapes are known fit the memory budget;
5. a first run on one zero drawing, which must give one (1,4,S,S) output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from math import prod
from pathlib import Path

from facesynth.errors import MissingDependencyError, ModelFileError
from facesynth.input_files import MB, InputFileError, check_regular
from facesynth.model.arch import DEFAULT_MEMORY_BUDGET, GiB, generator_memory

FIRST_RUN_TIMEOUT_S = 60.0  # generous: a process start, the checks and one run of a generator
# operators whose output size comes from the values of these inputs
ALLOCATING = {"ConstantOfShape": (0,), "Expand": (1,), "Tile": (1,), "Range": (0, 1, 2), "Resize": (1, 2, 3),
              "Upsample": (1,), "Pad": (1,), "OneHot": (1,), "CenterCropPad": (1,), "Col2Im": (1, 2)}
# operators that compute shapes: a value made by them from constants and shapes is known before a run
SHAPE_ARITHMETIC = {"Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Add", "Sub", "Mul", "Div", "Mod", "Cast",
                    "Identity", "Reshape", "Flatten", "Max", "Min", "Abs", "Neg", "Floor", "Ceil", "Equal", "Less",
                    "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Where", "ReduceProd",
                    "ReduceMax", "ReduceMin", "ReduceSum", "ConstantOfShape", "Range", "Expand", "Tile"}
CONTROL_FLOW = {"Loop", "Scan", "If", "SequenceMap"}


def _refuse(path: Path, why: str, ran: bool = False) -> ModelFileError:
    then = "this process never loaded it" if ran else "refused before ONNX Runtime ran it"
    return ModelFileError(f"{path}: {why}; {then}")


def _node(node, index: int) -> str:
    return f"node '{node.name[:100]}'" if node.name else f"node #{index}"


def check_onnx(path: str | Path, size: int, arch: dict | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
               first_run_timeout_s: float = FIRST_RUN_TIMEOUT_S) -> dict:
    """Every check above on generator.onnx for a size-`size` export; returns the first run's report
    (output shapes, ms, peak RSS of its process). ModelFileError names the file and the problem."""
    p = Path(path)
    limit = memory_budget // 2  # the parsed model, and ONNX Runtime's copy of its weights
    if arch is not None:
        limit = min(limit, int(generator_memory(arch).state_bytes * 1.1) + 16 * MB)
    try:
        check_regular(p, limit, what="ONNX model")
    except InputFileError as e:
        raise ModelFileError(f"{e} (its weights are at most {limit >> 20} MiB for the arch in generator.json)") from None
    return run_checked(p, size, memory_budget, first_run_timeout_s)


def static_checks(p: Path, size: int, memory_budget: int) -> None:
    """Checks 1-4 (in the child process); ModelFileError on the first problem."""
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("format onnx needs onnx and onnxruntime: pip install onnx onnxruntime") from None
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf says DecodeError, RuntimeError, ...
        raise _refuse(p, f"not an ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    _check_external_data(p, model, memory_budget)
    _check_structure(p, model)
    try:
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError
        raise _refuse(p, f"the ONNX checker or shape inference failed: {str(e)[:300]}") from None
    _check_io(p, inferred.graph, size)
    _check_allocations(p, inferred.graph)
    _check_known_sizes(p, inferred.graph, memory_budget)


def _graphs(graph):
    """`graph` and every subgraph in its nodes' attributes."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for a in node.attribute:
                stack.extend([a.g] if a.HasField("g") else [])
                stack.extend(a.graphs)


def _tensors(model):
    """Every TensorProto the model holds: initializers, sparse ones, node attributes."""
    for g in _graphs(model.graph):
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors


def _check_external_data(p: Path, model, budget: int) -> None:
    """External data files must lie inside the export directory (no absolute path, no '..', no
    link out of it), be regular files, and hold what the tensors say within the budget."""
    from onnx import TensorProto

    root = p.parent.resolve()
    total = 0
    for t in _tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = (root / loc).resolve()
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or not target.is_relative_to(root):
            raise _refuse(p, f"tensor '{t.name[:100]}' keeps its data in {loc!r}, outside the export directory "
                             f"{root} (an export keeps every file it needs beside generator.onnx)")
        try:
            st = check_regular(target, budget, what="ONNX external data file")
        except (InputFileError, OSError) as e:
            raise _refuse(p, f"tensor '{t.name[:100]}': {e}") from None
        offset, length = int(info.get("offset", 0) or 0), int(info.get("length", 0) or 0)
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise _refuse(p, f"tensor '{t.name[:100]}' claims bytes {offset}..{offset + length} of {loc!r}, "
                             f"which has {st.st_size}")
        total += length or st.st_size
    if total > budget // 2:
        raise _refuse(p, f"its external data is {total / GiB:.1f} GiB, more than half the memory budget")


def _check_structure(p: Path, model) -> None:
    if len(model.functions):
        raise _refuse(p, f"it defines {len(model.functions)} local function(s); a facesynth export has none")
    for i, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            raise _refuse(p, f"{_node(node, i)} uses operator {node.op_type[:50]!r} of domain "
                             f"{node.domain[:50]!r}; a facesynth export uses the standard operators only")
        if node.op_type in CONTROL_FLOW:
            raise _refuse(p, f"{_node(node, i)} is control flow ({node.op_type}); a facesynth export "
                             "has none")


def _dims(value) -> list:
    """Known dims as ints, unknown ones as None."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _check_io(p: Path, graph, size: int) -> None:
    """One float input (N,1,S,S) and one float output (N,4,S,S): what generator.json documents."""
    from onnx import TensorProto

    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    for role, values, ch in (("input", inputs, 1), ("output", graph.output, 4)):
        want = f"(N,{ch},{size},{size})"
        if len(values) != 1:
            raise _refuse(p, f"it has {len(values)} {role}s; a facesynth generator has one, {want}")
        v = values[0]
        dims = _dims(v) if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape") else None
        got = "(" + ",".join("?" if d is None else str(d) for d in dims) + ")" if dims is not None else "unknown"
        if (v.type.tensor_type.elem_type != TensorProto.FLOAT or dims is None or len(dims) != 4
                or dims[1:] != [ch, size, size] or dims[0] == 0):
            raise _refuse(p, f"its {role} '{v.name[:100]}' is {got}, not the documented float {want} "
                             f"(S = generator.json's size)")


def _check_allocations(p: Path, graph) -> None:
    """Operators that allocate from tensor values take those values from constants and shapes only."""
    known = {t.name for t in graph.initializer} | {""}
    for i, node in enumerate(graph.node):  # in topological order (the checker verified it)
        if node.op_type in ("Constant", "Shape", "Size") or (
                node.op_type in SHAPE_ARITHMETIC and all(i in known for i in node.input)):
            known.update(node.output)
        for k in ALLOCATING.get(node.op_type, ()):
            if k < len(node.input) and node.input[k] not in known:
                raise _refuse(p, f"{_node(node, i)} ({node.op_type}) allocates a tensor whose size is "
                                 "computed from the input's values at run time (an allocation bomb: a facesynth "
                                 "export sizes every tensor from constants and the input's shape)")


def _check_known_sizes(p: Path, graph, budget: int) -> None:
    """The weights and every tensor whose shape inference knows (unknown dims counted as 1: the
    batch) fit the budget."""
    from onnx.helper import tensor_dtype_to_np_dtype

    def itemsize(elem_type: int) -> int:
        try:
            return tensor_dtype_to_np_dtype(elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            return 8

    sizes = {t.name: prod(t.dims) * itemsize(t.data_type) for t in graph.initializer}
    for v in [*graph.value_info, *graph.output]:
        if v.type.HasField("tensor_type"):
            sizes[v.name] = prod(d or 1 for d in _dims(v)) * itemsize(v.type.tensor_type.elem_type)
    total = sum(sizes.values())
    if total > budget:
        big = max(sizes, key=sizes.get)
        raise _refuse(p, f"its tensors need at least {total / GiB:.1f} GiB ({big[:100]!r} alone "
                         f"{sizes[big] / GiB:.1f} GiB), more than the memory budget of {budget / GiB:.1f} GiB")


def run_checked(p: Path, size: int, memory_budget: int, timeout_s: float) -> dict:
    """Checks 1-5 in a child process capped at `memory_budget` bytes and stopped after `timeout_s`;
    its first run's report when all passed and it gave a (1,4,S,S) output, else ModelFileError."""
    cmd = [sys.executable, "-m", "facesynth.model.onnx_first_run", str(p), str(size), str(int(memory_budget))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise _refuse(p, f"its checks and first run on one {size} px drawing did not finish within {timeout_s:g} s "
                         "(time-boxed in a process of its own, which was stopped)", ran=True) from None
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if "refused" in report:  # a static check's ModelFileError, word for word
        raise ModelFileError(str(report["refused"]))
    if "missing" in report:
        raise MissingDependencyError(f"format onnx needs onnx and onnxruntime ({report['missing']}): "
                                     "pip install onnx onnxruntime")
    if proc.returncode < 0:
        raise _refuse(p, f"its checks or first run were killed by signal {-proc.returncode} (out of memory?) in "
                         "the process that tried them", ran=True)
    if "error" in report:
        why = (f"needs more memory than the budget of {memory_budget / GiB:.1f} GiB"
               if report.get("memory") else f"failed: {str(report['error'])[:300]}")
        raise _refuse(p, f"its first run (in a process of its own) {why}", ran=True)
    if proc.returncode != 0 or "shapes" not in report:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no report"]
        raise _refuse(p, f"its checks ended with exit code {proc.returncode}: {tail[0][:300]}", ran=True)
    if report["shapes"] != [[1, 4, size, size]]:
        raise _refuse(p, f"its first run gave outputs {report['shapes']}, not one (1,4,{size},{size})", ran=True)
    return report
