"""Shipping the generator: TorchScript (traced, the original's format) and ONNX, with the
background mask inside the graph and a JSON beside them holding what is needed to turn the
RGBD output back into metric 3D points (d0_mm, face_depth_mm, near_mm, size, intrinsics).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.model.checkpoint import load_checkpoint
from facesynth.model.generator import UNetGenerator, apply_background_mask

TS_NAME, ONNX_NAME, META_NAME = "generator.ts.pt", "generator.onnx", "generator.json"


class MaskedGenerator(nn.Module):
    """Eval-mode generator followed by the background mask (what live inference runs)."""

    def __init__(self, gen: UNetGenerator):
        super().__init__()
        self.gen = gen

    def forward(self, drawing: torch.Tensor) -> torch.Tensor:
        return apply_background_mask(self.gen(drawing))


def export_generator(gen: UNetGenerator, out_dir: str | Path, meta: dict, onnx: bool = True) -> Path:
    """Write generator.ts.pt (+ generator.onnx) and generator.json; returns the TorchScript path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = MaskedGenerator(_cpu_copy(gen)).eval()
    example = torch.zeros(1, gen.in_ch, gen.size, gen.size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
    ts_path = out / TS_NAME
    traced.save(str(ts_path))
    info = {"format": "facesynth.pix2pix", "input": "drawing (N,1,S,S) in [-1,1]",
            "output": "RGBD (N,4,S,S) in [-1,1], background -1 on every channel",
            "size": gen.size, "ngf": gen.ngf, "in_ch": gen.in_ch, "out_ch": gen.out_ch,
            "torchscript": TS_NAME, **meta}
    if onnx:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(out / ONNX_NAME), dynamo=False,
                              input_names=["drawing"], output_names=["rgbd"],
                              dynamic_axes={"drawing": {0: "n"}, "rgbd": {0: "n"}}, opset_version=17)
        info["onnx"] = ONNX_NAME
    (out / META_NAME).write_text(json.dumps(info, indent=2, default=float))
    return ts_path


def _cpu_copy(gen: UNetGenerator) -> UNetGenerator:
    copy = UNetGenerator(gen.size, gen.ngf, gen.in_ch, gen.out_ch)
    copy.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in gen.state_dict().items()})
    return copy.eval()


def generator_from_checkpoint(path: str | Path) -> tuple[UNetGenerator, dict, dict]:
    """Rebuild the generator of a training checkpoint: (generator, config, dataset metadata)."""
    st = load_checkpoint(path)
    cfg = st["config"]
    gen = UNetGenerator(int(cfg["size"]), int(cfg["ngf"]))
    gen.load_state_dict(st["G"])
    meta = {**dict(st.get("meta", {})), "epochs": int(st["epoch"]), "steps": int(st["step"])}
    return gen.eval(), cfg, meta


@dataclass
class ExportedModel:
    """A loaded export: call it with a drawing batch (torch or numpy, (N,1,S,S) in [-1,1])."""

    module: torch.jit.ScriptModule
    meta: dict
    path: Path

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def __call__(self, drawing):
        as_numpy = isinstance(drawing, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(drawing, np.float32)) if as_numpy else drawing
        with torch.no_grad():
            y = self.module(x)
        return y.numpy() if as_numpy else y


def load_exported(path: str | Path) -> ExportedModel:
    """Load generator.ts.pt (or the directory holding it) and the metadata beside it."""
    p = Path(path)
    if p.is_dir():
        p = p / TS_NAME
    if not p.is_file():
        raise MissingDependencyError(f"no exported model at {p}; train one (model.pix2pix) or run "
                                     "'facesynth model export --checkpoint CKPT --out DIR'")
    meta_path = p.with_name(META_NAME)
    if not meta_path.is_file():
        raise InputDataError(f"{meta_path} is missing: the export has no depth metadata")
    meta = json.loads(meta_path.read_text())
    with warnings.catch_warnings():  # TorchScript is deprecated upstream but is the original's format
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(p), map_location="cpu").eval()
    return ExportedModel(module, meta, p)


def onnx_session(path: str | Path):
    """An onnxruntime session for generator.onnx (CPU)."""
    import onnxruntime as ort

    p = Path(path)
    if p.is_dir():
        p = p / ONNX_NAME
    if not p.is_file():
        raise MissingDependencyError(f"no ONNX model at {p}; export with 'facesynth model export'")
    return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
