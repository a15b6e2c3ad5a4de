"""An export directory's files, checked as files someone may have sent, before torch is loaded.

`check_export` is every check that needs no model built: where the files are (`export_files`),
generator.json bounded, typed and in range (`read_meta`), the memory its arch needs within a
budget (arch.py), the model file's size for that arch and its sha256 against generator.json, and
for ONNX the graph checks and time-boxed first run of onnx_check.py. export.py builds from there.

An export's generator.json says how big everything is: the network size the live canvas is drawn
at, the crop the eval split is resized to, the arch a net is built from, the landmark statistics
live input is scaled by. A crafted one (size 65536, a negative or 400-digit integer, a nesting of
100,000 levels, landmark lists of the wrong shape) must be refused here, naming the key, not
found by OpenCV or PyTorch running out of memory. Keys it does not know (training metadata,
metrics) are kept as they are: the read is bounded in size and nesting (input_files.read_json).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facesynth.errors import MissingDependencyError, ModelFileError
from facesynth.input_files import MB, InputFileError, check_regular, read_json
from facesynth.model.arch import DEFAULT_MEMORY_BUDGET, LIMITS, GeneratorMemory, check_arch, check_memory

WEIGHTS_NAME, TS_NAME, ONNX_NAME, META_NAME = "generator.pt", "generator.ts.pt", "generator.onnx", "generator.json"
Format = Literal["weights", "torchscript", "onnx"]
FORMATS = ("weights", "torchscript", "onnx")

MAX_META_BYTES = 16 * MB  # generator.json is a few KB (landmark statistics included)
SIZE_RANGE = LIMITS["size"]
# numbers of the depth normalisation (face/crop.py's Normalisation) and their plausible ranges
NUMBER_RANGES = {"d0_mm": (1.0, 20_000.0), "crop_mm": (1.0, 10_000.0), "face_depth_mm": (1.0, 10_000.0),
                 "near_mm": (0.0, 20_000.0), "margin": (0.01, 100.0), "fx": (0.0, 1e6),
                 "scale_factor": (0.0, 1e6)}
INT_RANGES = {"size": SIZE_RANGE, "crop_size": (16, 4096), "ngf": LIMITS["ngf"], "in_ch": (1, 1),
              "out_ch": (4, 4), "reference_frame": (0, 10**9)}
DICTS = ("camera_intrinsics", "store_identity")
STRINGS = ("format", "input", "output", "weights", "weights_sha256", "onnx", "torchscript",
           "depth_source")  # depth_source: optional, exports before issue 21 have none
LANDMARK_ARRAYS = ("mean", "neutral", "lo", "hi")


def read_meta(meta_path: Path) -> dict:
    """generator.json as a checked dict (JSON: nothing in it can run); ModelFileError otherwise."""
    if not meta_path.exists():
        raise ModelFileError(f"{meta_path} is missing: an export needs its generator.json "
                             "(architecture and depth metadata); export again with 'facesynth model export'")
    try:
        meta = read_json(meta_path, MAX_META_BYTES, what="generator.json")
    except InputFileError as e:
        raise ModelFileError(f"{e}: the generator.json is damaged or was not written by facesynth; "
                             "export again") from None
    except OSError as e:
        raise ModelFileError(f"{meta_path} cannot be read ({e.strerror or e})") from None
    return validate_meta(meta, str(meta_path))


def _int_in(meta: dict, key: str, lo: int, hi: int, where: str) -> None:
    v = meta[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        shown = repr(v) if not isinstance(v, int) or abs(v) < 10**12 else f"an integer of {len(str(abs(v)))} digits"
        raise ModelFileError(f"{where}: '{key}' is {shown[:80]}, it must be an integer in [{lo}, {hi}]")


def _number_in(meta: dict, key: str, lo: float, hi: float, where: str) -> None:
    v = meta[key]
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi
    if not ok:
        raise ModelFileError(f"{where}: '{key}' is {repr(v)[:80]}, it must be a number in [{lo:g}, {hi:g}]")


def validate_meta(meta: Any, where: str) -> dict:
    """`meta` when every key facesynth uses has the right type and a plausible value; else
    ModelFileError naming `where`, the key and its range. Nothing is allocated from it before."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{where} is not a facesynth generator.json (not a JSON object)")
    if "size" not in meta:
        raise ModelFileError(f"{where} is not a facesynth generator.json (no integer 'size')")
    for key, (lo, hi) in INT_RANGES.items():
        if key in meta:
            _int_in(meta, key, lo, hi, where)
    if meta["size"] & (meta["size"] - 1):
        raise ModelFileError(f"{where}: 'size' is {meta['size']}, it must be a power of two (the U-Net halves it "
                             "down to 1 px)")
    for key, (lo, hi) in NUMBER_RANGES.items():
        if key in meta:
            _number_in(meta, key, lo, hi, where)
    for key in DICTS:
        if key in meta and not isinstance(meta[key], dict):
            raise ModelFileError(f"{where}: '{key}' must be a JSON object, not {type(meta[key]).__name__}")
    for key in STRINGS:
        if key in meta and not (isinstance(meta[key], str) and len(meta[key]) <= 1000):
            raise ModelFileError(f"{where}: '{key}' must be a short text")
    if "arch" in meta:
        arch = check_arch(meta["arch"], where)
        if arch["size"] != meta["size"]:
            raise ModelFileError(f"{where}: 'size' is {meta['size']} but the arch's size is {arch['size']}")
        if (arch["in_ch"], arch["out_ch"]) != (1, 4):
            raise ModelFileError(f"{where}: the arch maps {arch['in_ch']} channel(s) to {arch['out_ch']}; a facesynth "
                                 "generator maps a drawing (1 channel) to RGBD (4 channels)")
    if "landmark_stats" in meta:
        _check_landmark_stats(meta["landmark_stats"], where)
    return meta


def _check_landmark_stats(st: Any, where: str) -> None:
    """70 finite (x, y) points per array, at a network size in range."""
    if not isinstance(st, dict):
        raise ModelFileError(f"{where}: 'landmark_stats' must be a JSON object")
    if "size" not in st:
        raise ModelFileError(f"{where}: 'landmark_stats' has no 'size'")
    _int_in(st, "size", *SIZE_RANGE, f"{where} landmark_stats")
    for name in LANDMARK_ARRAYS:
        pts = st.get(name)
        flat = None
        if isinstance(pts, list) and len(pts) == 70 and all(isinstance(p, list) and len(p) == 2 for p in pts):
            flat = [v for p in pts for v in p]
        elif isinstance(pts, list) and len(pts) == 140:
            flat = pts
        if flat is None or not all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
                                   and abs(v) <= 1e6 for v in flat):
            raise ModelFileError(f"{where}: landmark_stats '{name}' must be 70 points of 2 finite numbers")


# ---- the export's files -------------------------------------------------------------------
def export_files(path: str | Path, fmt: Format) -> tuple[Path, Path]:
    """(model file, generator.json) for `path` = an export directory or one of its files."""
    p = Path(path)
    if fmt not in FORMATS:
        raise ModelFileError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
    names = {"weights": WEIGHTS_NAME, "torchscript": TS_NAME, "onnx": ONNX_NAME}
    if p.is_dir():
        return p / names[fmt], p / META_NAME
    if p.name == META_NAME:
        return p.with_name(names[fmt]), p
    kind = "torchscript" if p.name.endswith(".ts.pt") else "onnx" if p.suffix == ".onnx" else "weights"
    if kind != fmt:
        hint = (" TorchScript runs code stored in the file: load it only if you trust it, with "
                "format: torchscript (live.generator) or --trust-torchscript (model eval); or give the "
                "export directory to load its weights") if kind == "torchscript" else ""
        raise ModelFileError(f"{p} is a {kind} file but the {fmt} format was asked for.{hint}")
    return p, p.with_name(META_NAME)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class CheckedExport:
    """An export whose files passed check_export: what export.load_checked builds from."""

    model_file: Path
    meta: dict
    arch: dict
    format: str
    memory: GeneratorMemory
    memory_budget: int
    first_run: dict | None = None  # an ONNX model's first run (output shapes, ms, peak RSS)


def check_export(path: str | Path, format: Format = "weights", memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 first_run_timeout_s: float | None = None) -> CheckedExport:
    """Every check of an export's files before a model is built; ModelFileError names the file."""
    model_file, meta_path = export_files(path, format)
    if not model_file.exists():
        if format == "weights" and model_file.with_name(TS_NAME).is_file():
            raise ModelFileError(
                f"{model_file.parent} holds only TorchScript (an export from an older facesynth); TorchScript "
                "runs code from the file, so it is not loaded by default. Re-export it: 'facesynth model export "
                "--checkpoint <model dir>/checkpoints --out DIR', or, if you trust the file, use format: "
                "torchscript / --trust-torchscript")
        raise MissingDependencyError(f"no exported model at {model_file}; train one (model.pix2pix) or run "
                                     "'facesynth model export --checkpoint CKPT --out DIR'")
    meta = read_meta(meta_path)
    arch = meta.get("arch", {"size": meta["size"], "ngf": meta.get("ngf", 64)})
    mem = check_memory(arch, str(meta_path), memory_budget)
    checked = CheckedExport(model_file, meta, arch, format, mem, memory_budget)
    if format == "onnx":
        from facesynth.model.onnx_check import FIRST_RUN_TIMEOUT_S, check_onnx

        checked.first_run = check_onnx(model_file, meta["size"], arch, memory_budget,
                                       FIRST_RUN_TIMEOUT_S if first_run_timeout_s is None else first_run_timeout_s)
        return checked
    # a state_dict file holds the weights and little else; TorchScript adds its code
    expected = mem.state_bytes + (MB if format == "weights" else 16 * MB)
    try:
        check_regular(model_file, int(expected * 1.1), what="model file")
    except InputFileError as e:
        raise ModelFileError(f"{e}: the arch in generator.json has weights of about {expected >> 20} MiB; the "
                             "file is damaged or belongs to another export") from None
    want = meta.get("weights_sha256")
    if format == "weights" and want is not None and sha256_of(model_file) != want:
        raise ModelFileError(f"{model_file} does not match its generator.json (sha256 differs): the file is "
                             "damaged or from another export; export again")
    return checked
