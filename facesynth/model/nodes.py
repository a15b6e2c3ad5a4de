"""`model.pix2pix`: train the drawing -> RGBD generator from the pairs in the store.

A thin adapter: it collects the ChunkRefs of the pairs (fill or crop group), and on finish()
loads them into memory, trains with facesynth.model.train (resuming from the last checkpoint
in the model directory `<store>.model/`), exports TorchScript + ONNX + metadata and emits
{"path": <exported TorchScript>} on `model`.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register


class Pix2PixParams(Params):
    size: int = Field(256, description="network image size: 256 (CPU default) or 512; any power of two >= 32 for tests")
    ngf: int = Field(64, ge=1, le=256)
    ndf: int = Field(64, ge=1, le=256)
    epochs: int = Field(30, ge=0, le=10_000)
    decay_epochs: int = Field(70, ge=0, le=10_000)
    batch_size: int = Field(1, ge=1, le=512)
    lr: float = Field(2e-4, gt=0, le=1.0)
    lambda_l1: float = Field(100.0, ge=0)
    lambda_feat: float = Field(10.0, ge=0)
    lambda_lpips: float = Field(10.0, ge=0)
    lpips: bool = True
    lpips_net: Literal["alexnet", "vgg16"] = "alexnet"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"
    seed: int = Field(0, ge=0)
    max_minutes: float | None = Field(None, gt=0)
    out_dir: str | None = Field(None, description="model directory; default <store>.model")
    onnx: bool = True

    @field_validator("size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 32 or v > 1024 or v & (v - 1):
            raise ValueError("size must be 256 or 512 (or another power of two from 32 to 1024)")
        return v


def model_dir(store_path: str, out_dir: str | None = None) -> Path:
    return Path(out_dir) if out_dir else Path(str(store_path).rstrip("/") + ".model")


def chunk_frames(refs: list[ChunkRef]) -> np.ndarray:
    """The sorted union of the frame ranges of `refs`."""
    if not refs:
        return np.zeros(0, int)
    return np.unique(np.concatenate([np.arange(r.start, r.stop) for r in refs]))


def export_meta(norm: dict) -> dict:
    """What an exported model needs to turn its depth back into mm (and points)."""
    import json

    return json.loads(json.dumps(norm, default=float))  # the whole normalisation, JSON-clean


def train_from_store(store_path: str, params: Pix2PixParams, frames: np.ndarray | None, out: Path,
                     report, stop: threading.Event | None = None) -> dict:
    """Load pairs, train (resuming), export; returns the trainer's result + export path."""
    from facesynth.model.dataset import EVAL, TRAIN, load_pairs
    from facesynth.model.export import export_generator
    from facesynth.model.train import Trainer, TrainConfig
    from facesynth.store.frame_store import FrameStore

    store = FrameStore.open(store_path, mode="r")
    train = load_pairs(store, TRAIN, params.size, frames)
    eval_data = load_pairs(store, EVAL, params.size, frames)
    cfg = TrainConfig(size=params.size, ngf=params.ngf, ndf=params.ndf, epochs=params.epochs,
                      decay_epochs=params.decay_epochs, batch_size=params.batch_size, lr=params.lr,
                      lambda_l1=params.lambda_l1, lambda_feat=params.lambda_feat,
                      lambda_lpips=params.lambda_lpips, lpips=params.lpips, lpips_net=params.lpips_net,
                      device=params.device, amp=params.amp, seed=params.seed, max_minutes=params.max_minutes)
    trainer = Trainer(cfg, out, callback=lambda name, data: report(name, **data))
    trainer.meta = export_meta(train.norm)
    resumed = trainer.resume()
    report("train.start", resumed=resumed, epoch=trainer.epoch, epochs=cfg.total_epochs,
           train_frames=len(train), eval_frames=len(eval_data), device=str(trainer.device),
           amp=trainer.amp, channels_last=trainer.cl, model_dir=str(out))
    result = trainer.fit(train, eval_data if len(eval_data) else None,
                         should_stop=stop.is_set if stop is not None else None)
    result["resumed"] = resumed
    if result["status"] == "done":
        meta = dict(trainer.meta)
        meta.update({"epochs": trainer.epoch, "steps": trainer.step, "eval": result.get("eval", {}),
                     "baseline": result.get("baseline", {})})
        result["path"] = str(export_generator(trainer.G, out / "export", meta, onnx=params.onnx))
    return result


@register
class Pix2PixNode(Node):
    kind = "model.pix2pix"
    summary = "Train the pix2pix(HD) drawing -> RGBD generator from the store, resumable; export it"
    Params = Pix2PixParams
    inputs = {"pairs": "ChunkRefs of the training pairs (fill or crop group)"}
    outputs = {"model": '{"path": exported TorchScript generator}'}
    max_replicas = 1

    async def setup(self) -> None:
        self._refs: list[ChunkRef] = []
        self._stop = threading.Event()
        store_path = self.ctx.store_path
        self._out = model_dir(store_path or "data_store/model", self.params.out_dir)
        ckpts = self._out / "checkpoints"
        if self.ctx.restart and ckpts.exists() and store_path:
            # a --restart run recreated the store: checkpoints older than it trained on other data
            stamp = Path(store_path) / "zarr.json"
            if stamp.exists() and ckpts.stat().st_mtime < stamp.stat().st_mtime:
                shutil.rmtree(self._out)

    async def process(self, port: str, item) -> list[Output]:
        ref = item if isinstance(item, ChunkRef) else ChunkRef.from_dict(item)
        self._refs.append(ref)
        return []

    async def finish(self) -> list[Output]:
        frames = chunk_frames(self._refs) if self._refs else None
        if self.ctx.store_path is None:
            from facesynth.errors import StoreError
            raise StoreError("model.pix2pix trains from the frame store, but the graph declares none")
        result = await self.run_blocking(train_from_store, self.ctx.store_path, self.params, frames,
                                         self._out, self.ctx.report, self._stop)
        if result["status"] != "done":
            self.ctx.report("train.stopped", epoch=result["epoch"], step=result["step"])
            return []
        return [Output("model", {"path": result["path"]}, key="model")]

    async def close(self) -> None:
        self._stop.set()
