"""Shipping the generator, and loading what was shipped without running code from it.

An export directory holds:
- generator.pt: the generator's state_dict (tensors only), loaded with weights_only=True;
- generator.json: how to rebuild it ("arch": UNetGenerator kwargs, "weights_sha256") and what
  is needed to turn the RGBD output back into metric 3D points (d0_mm, face_depth_mm, near_mm,
  size, intrinsics), the store it was trained on ("store_identity") and its eval metrics;
- generator.onnx: the same net with the background mask inside (ONNX Runtime runs no Python);
- generator.ts.pt: TorchScript (traced, mask inside), the original's format. Loading TorchScript
  runs code stored in the file, so it is only ever loaded when asked for explicitly
  (`format="torchscript"`, `model eval --trust-torchscript`), for files you trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from copy import deepcopy as copy_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from facesynth.errors import MissingDependencyError, ModelFileError, ModelWriteError
from facesynth.model.arch import build_generator, generator_arch
from facesynth.model.checkpoint import (TMP_PREFIX, Checkpoints, atomic_torch_save, load_checkpoint,
                                         safe_torch_load)
from facesynth.model.generator import UNetGenerator, apply_background_mask

WEIGHTS_NAME, TS_NAME, ONNX_NAME, META_NAME = "generator.pt", "generator.ts.pt", "generator.onnx", "generator.json"
Format = Literal["weights", "torchscript", "onnx"]
FORMATS = ("weights", "torchscript", "onnx")
MAX_META_BYTES = 16 << 20  # generator.json is a few KB (landmark statistics included)


class MaskedGenerator(nn.Module):
    """Eval-mode generator followed by the background mask (what live inference runs)."""

    def __init__(self, gen: UNetGenerator):
        super().__init__()
        self.gen = gen

    def forward(self, drawing: torch.Tensor) -> torch.Tensor:
        return apply_background_mask(self.gen(drawing))


# ---- writing ---------------------------------------------------------------------------
def export_generator(gen: UNetGenerator, out_dir: str | Path, meta: dict, onnx: bool = True,
                     torchscript: bool = True) -> Path:
    """Write generator.pt + generator.json (+ .onnx, .ts.pt); returns the weights path.

    Each file is written under a temporary name and renamed, generator.json last: a crash or
    a full disk never leaves a mix of two exports that generator.json would vouch for.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = generator_arch(gen)
    cpu = _rebuilt_copy(gen, arch)
    model = MaskedGenerator(cpu).eval()
    example = torch.zeros(1, cpu.in_ch, cpu.size, cpu.size)
    weights = atomic_torch_save(cpu.state_dict(), out / WEIGHTS_NAME, what="export")
    info = {"format": "facesynth.pix2pix", "input": "drawing (N,1,S,S) in [-1,1]",
            "output": "RGBD (N,4,S,S) in [-1,1], background -1 on every channel",
            "size": cpu.size, "ngf": cpu.ngf, "in_ch": cpu.in_ch, "out_ch": cpu.out_ch,
            "arch": arch, "weights": WEIGHTS_NAME, "weights_sha256": _sha256(weights), **meta}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if torchscript:
            _write_via_tmp(out / TS_NAME, lambda tmp: torch.jit.trace(model, example).save(str(tmp)))
            info["torchscript"] = TS_NAME
        if onnx:
            _write_via_tmp(out / ONNX_NAME, lambda tmp: torch.onnx.export(
                model, (example,), str(tmp), dynamo=False, input_names=["drawing"], output_names=["rgbd"],
                dynamic_axes={"drawing": {0: "n"}, "rgbd": {0: "n"}}, opset_version=17))
            info["onnx"] = ONNX_NAME
    _write_via_tmp(out / META_NAME, lambda tmp: tmp.write_text(json.dumps(info, indent=2, default=float)))
    return weights


def _rebuilt_copy(gen: UNetGenerator, arch: dict) -> UNetGenerator:
    """A CPU float32 copy built from `arch` alone, checked to compute what `gen` computes: an
    architecture option the arch dict missed would otherwise ship weights nobody can rebuild."""
    problem = (f"the generator cannot be rebuilt from its recorded arguments {arch} "
               "(an architecture option is not kept on the UNetGenerator instance)")
    copy = build_generator(arch, "export")
    try:
        copy.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in gen.state_dict().items()})
    except RuntimeError:
        raise ModelFileError(problem) from None
    copy.eval()
    x = torch.rand(2, copy.in_ch, copy.size, copy.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    original = copy_module(gen).float().cpu().eval()  # on the CPU too: no TF32/bf16 differences
    with torch.no_grad():
        want, got = original(x), copy(x)
    if not torch.allclose(want, got, atol=1e-4, rtol=1e-4):
        raise ModelFileError(problem)
    return copy


def _write_via_tmp(target: Path, write) -> None:
    tmp = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{target.name}")
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelWriteError(f"could not write {target}: {e.strerror or e}; the previous file is intact") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generator_from_checkpoint(path: str | Path) -> tuple[UNetGenerator, dict, dict]:
    """Rebuild the generator of a training checkpoint: (generator, config, dataset metadata).

    `path` is a file or a checkpoints directory (its newest intact checkpoint; the damaged ones
    skipped are listed in meta["damaged_checkpoints"]).
    """
    damaged: list = []
    if Path(path).is_dir():
        st, used, skipped = Checkpoints(path).load_latest()
        if st is None:
            raise ModelFileError(f"no checkpoint in {path}")
        path, damaged = used, [f"{p}: {why}" for p, why in skipped]
    else:
        st = load_checkpoint(path)
    cfg = st["config"]
    arch = st.get("arch") or {"size": int(cfg["size"]), "ngf": int(cfg["ngf"])}
    gen = build_generator(arch, str(path))
    try:  # the weight average when training kept one: it is what the trainer exports
        gen.load_state_dict(st.get("G_ema") or st["G"])
    except (RuntimeError, TypeError) as e:
        raise ModelFileError(f"{path}: its generator weights do not fit {arch}: {str(e)[:300]}") from None
    meta = {**dict(st.get("meta", {})), "epochs": int(st["epoch"]), "steps": int(st["step"]),
            "checkpoint": str(path), **({"damaged_checkpoints": damaged} if damaged else {})}
    return gen.eval(), cfg, meta


# ---- loading ---------------------------------------------------------------------------
@dataclass
class ExportedModel:
    """A loaded export: call it with a drawing batch (torch or numpy, (N,1,S,S) in [-1,1])."""

    module: Any  # torch module (weights, torchscript) or a torch-in/torch-out ONNX Runtime wrapper
    meta: dict
    path: Path
    format: str = "weights"

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def __call__(self, drawing):
        as_numpy = isinstance(drawing, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(drawing, np.float32)) if as_numpy else drawing
        with torch.no_grad():
            y = self.module(x)
        return y.numpy() if as_numpy else y


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


def read_meta(meta_path: Path) -> dict:
    """generator.json as a dict (JSON: nothing in it can run)."""
    if not meta_path.is_file():
        raise ModelFileError(f"{meta_path} is missing: an export needs its generator.json "
                             "(architecture and depth metadata); export again with 'facesynth model export'")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise ModelFileError(f"{meta_path} is {meta_path.stat().st_size} bytes, over the "
                             f"{MAX_META_BYTES >> 20} MiB a generator.json can be: not read")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{meta_path} is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("size"), int):
        raise ModelFileError(f"{meta_path} is not a facesynth generator.json (no integer 'size')")
    if not isinstance(meta.get("depth_source", ""), str):  # optional: exports before issue 21 have none
        raise ModelFileError(f"{meta_path}: 'depth_source' must be a string (where the training depth came from)")
    return meta


def load_exported(path: str | Path, format: Format = "weights", onnx_threads: int = 2,
                  device: str = "cpu") -> ExportedModel:
    """Load an export: by default its weights (no code from the file); TorchScript only when asked."""
    model_file, meta_path = export_files(path, format)
    if not model_file.is_file():
        if format == "weights" and model_file.with_name(TS_NAME).is_file():
            raise ModelFileError(
                f"{model_file.parent} holds only TorchScript (an export from an older facesynth); TorchScript "
                "runs code from the file, so it is not loaded by default. Re-export it: 'facesynth model export "
                "--checkpoint <model dir>/checkpoints --out DIR', or, if you trust the file, use format: "
                "torchscript / --trust-torchscript")
        raise MissingDependencyError(f"no exported model at {model_file}; train one (model.pix2pix) or run "
                                     "'facesynth model export --checkpoint CKPT --out DIR'")
    meta = read_meta(meta_path)
    if format == "weights":
        module = _load_weights(model_file, meta)
    elif format == "torchscript":
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but is the original's format
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                module = torch.jit.load(str(model_file), map_location="cpu").eval()
            except Exception as e:
                raise ModelFileError(f"{model_file} is not a readable TorchScript file: {str(e)[:300]}") from None
    else:
        module = OnnxGenerator(model_file, onnx_threads, device)
    return ExportedModel(module, meta, model_file, format)


def _load_weights(weights: Path, meta: dict) -> nn.Module:
    want = meta.get("weights_sha256")
    if want is not None and _sha256(weights) != want:
        raise ModelFileError(f"{weights} does not match its generator.json (sha256 differs): the file is "
                             "damaged or from another export; export again")
    state = safe_torch_load(weights, what="generator weights file")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelFileError(f"{weights} is not a generator state_dict (names -> tensors)")
    arch = meta.get("arch", {"size": meta["size"], "ngf": meta.get("ngf", 64)})
    gen = build_generator(arch, str(weights.with_name(META_NAME)))
    try:
        gen.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(f"{weights} does not fit the architecture in generator.json {arch}: "
                             f"{str(e)[:300]}") from None
    return MaskedGenerator(gen).eval().requires_grad_(False)


class OnnxGenerator:
    """generator.onnx in ONNX Runtime, called like the torch module: (N,1,S,S) tensor -> tensor."""

    def __init__(self, path: str | Path, threads: int = 2, device: str = "cpu"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("format onnx needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise MissingDependencyError(f"device {device!r} with format onnx needs onnxruntime-gpu "
                                             "(CUDAExecutionProvider is not available)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # not an ONNX model, or an operator this runtime lacks
            raise ModelFileError(f"{path} is not a loadable ONNX model: {str(e)[:300]}") from None
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x):
        arr = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
        return torch.from_numpy(self.session.run(None, {self.input: np.ascontiguousarray(arr)})[0])


def onnx_session(path: str | Path, threads: int = 2):
    """An onnxruntime session for generator.onnx (CPU)."""
    p = Path(path)
    if p.is_dir():
        p = p / ONNX_NAME
    if not p.is_file():
        raise MissingDependencyError(f"no ONNX model at {p}; export with 'facesynth model export'")
    return OnnxGenerator(p, threads).session
