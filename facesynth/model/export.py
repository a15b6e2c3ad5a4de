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

import json
import os
import warnings
from copy import deepcopy as copy_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facesynth.errors import MissingDependencyError, ModelFileError, ModelWriteError
from facesynth.model.arch import DEFAULT_MEMORY_BUDGET
from facesynth.model.export_meta import (FORMATS, META_NAME, ONNX_NAME, TS_NAME, WEIGHTS_NAME,  # noqa: F401
                                         CheckedExport, Format, check_export, export_files, sha256_of)
from facesynth.model.onnx_check import FIRST_RUN_TIMEOUT_S
from facesynth.model.checkpoint import (TMP_PREFIX, Checkpoints, atomic_torch_save, load_checkpoint,
                                         safe_torch_load)
from facesynth.model.generator import UNetGenerator, apply_background_mask, build_generator, generator_arch



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
            "arch": arch, "weights": WEIGHTS_NAME, "weights_sha256": sha256_of(weights), **meta}
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


def default_format(path: str | Path, device: str = "cpu") -> str:
    """The fastest safe format for live inference: on CPU ONNX Runtime when the export has its
    generator.onnx (ONNX is data, not code: measured 2.5x faster than the weights in eager PyTorch
    on this project's CPUs), else the weights; a file named explicitly is loaded as what it is."""
    p = Path(path)
    if p.is_dir() or p.name == META_NAME:
        onnx = (p if p.is_dir() else p.parent) / ONNX_NAME
        return "onnx" if device == "cpu" and onnx.is_file() else "weights"
    return "onnx" if p.suffix == ".onnx" else "weights"  # a .ts.pt file is refused by export_files, as before


def load_exported(path: str | Path, format: Format = "weights", onnx_threads: int = 2,
                  device: str = "cpu", memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  first_run_timeout_s: float = FIRST_RUN_TIMEOUT_S) -> ExportedModel:
    """Load an export: by default its weights (no code from the file); TorchScript only when asked.
    Every file is checked first (export_meta.check_export: no torch needed); `memory_budget` bytes
    bound what its arch may take, `first_run_timeout_s` an ONNX model's first run."""
    return load_checked(check_export(path, format, memory_budget, first_run_timeout_s), onnx_threads, device)


def load_checked(checked: CheckedExport, onnx_threads: int = 2, device: str = "cpu") -> ExportedModel:
    """The model of an export that check_export has passed."""
    model_file, meta, fmt = checked.model_file, checked.meta, checked.format
    if fmt == "weights":
        module = _load_weights(model_file, checked.arch, checked.memory_budget)
    elif fmt == "torchscript":
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but is the original's format
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                module = torch.jit.load(str(model_file), map_location="cpu").eval()
            except Exception as e:
                raise ModelFileError(f"{model_file} is not a readable TorchScript file: {str(e)[:300]}") from None
    else:
        module = OnnxGenerator(model_file, onnx_threads, device)
    return ExportedModel(module, meta, model_file, fmt)


def _load_weights(weights: Path, arch: dict, memory_budget: int) -> nn.Module:
    """generator.pt (its sha256 already checked against generator.json) into the net of `arch`."""
    state = safe_torch_load(weights, what="generator weights file")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelFileError(f"{weights} is not a generator state_dict (names -> tensors)")
    gen = build_generator(arch, str(weights.with_name(META_NAME)), memory_budget)
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
            if "External data path" in str(e):  # ONNX Runtime keeps external data inside the model's folder
                raise ModelFileError(f"{path} refers to external data outside its export directory "
                                     f"{Path(path).parent} (or by an absolute path): refused. "
                                     f"ONNX Runtime: {str(e)[:300]}") from None
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
