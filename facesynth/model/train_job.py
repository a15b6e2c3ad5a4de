"""One training job of `model.pix2pix`: its parameters and `train_from_store` (load the pairs,
train, resuming, export), shared by the node (model/nodes.py) and the training child process
(model/train_process.py), so that neither imports the other.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from facesynth.nodes.base import Params
from facesynth.nodes.cores import usable_cores


class Pix2PixParams(Params):
    size: int = Field(256, description="network image size: 256 (CPU default) or 512; any power of two >= 32 for tests")
    ngf: int = Field(64, ge=1, le=256)
    ndf: int = Field(64, ge=1, le=256)
    epochs: int = Field(30, ge=0, le=10_000)
    decay_epochs: int = Field(70, ge=0, le=10_000)
    steps: int = Field(0, ge=0, le=100_000_000, description="> 0: train `steps` steps at the full rate, then "
                       "`decay_steps` of linear decay, whatever the set's size (instead of epochs/decay_epochs)")
    decay_steps: int = Field(0, ge=0, le=100_000_000)
    eval_every_steps: int = Field(0, ge=0, le=100_000_000, description="eval metrics + preview every N steps (0 = off)")
    eval_every_s: float = Field(60.0, ge=0, description="... or every N seconds of training, whichever is first (0 = off); always at the end")
    checkpoint_every_s: float = Field(300.0, ge=0, description="a checkpoint at the first evaluation this long after the last; always at the end and on stop")
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
    keep_last: int = Field(2, ge=1, le=10_000, description="step checkpoints kept (besides latest.pt and best.pt)")
    # training recipe (facesynth/model/recipes.py); the options below, when set, override it
    recipe: Literal["original", "facesynth"] = Field("facesynth", description="original: pix2pix/pix2pixHD as published; facesynth: the measured default")
    upsample: Literal["transpose", "resize"] | None = None
    norm: Literal["batch", "instance", "none"] | None = None
    dropout: float | None = Field(None, ge=0, lt=1)
    ema: float | None = Field(None, ge=0, lt=1, description="decay of the exported weight average; 0 = off")
    warmup_steps: int | None = Field(None, ge=0, description="steps of L1 + LPIPS only before the GAN terms (past the last step: none)")
    depth_weight: float | None = Field(None, ge=0)
    augment_px: int | None = Field(None, ge=0, le=64)
    augment_scale: float | None = Field(None, ge=0, le=0.5, description="random zoom of drawing and target, 1 +- this")
    augment_rotate_deg: float | None = Field(None, ge=0, le=45, description="random rotation of drawing and target")
    augment_jitter: float | None = Field(None, ge=0, le=1, description="random brightness/contrast of the target's colour")
    augment_until: float | None = Field(None, ge=0, le=1, description="share of the steps augmented (then the pairs as captured)")
    detail_weight: float | None = Field(None, ge=0, description="extra L1 weight on the eyes and mouth")
    ssim_weight: float | None = Field(None, ge=0, description="weight of a (1 - face SSIM) colour loss; 0 = off")
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam's beta1 (0.5, the GAN setting, in both recipes)")
    lpips_face: bool | None = Field(None, description="LPIPS loss on the face's box with the background made equal, not the crop")
    onnx: bool = True
    threads: int = Field(0, ge=0, le=1024, description="torch threads while training on CPU; 0 = every core of the "
                         "machine it runs on (training begins once the upstream stages have finished)")

    @field_validator("size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 32 or v > 1024 or v & (v - 1):
            raise ValueError("size must be 256 or 512 (or another power of two from 32 to 1024)")
        return v


def model_dir(store_path: str, out_dir: str | None = None) -> Path:
    return Path(out_dir) if out_dir else Path(str(store_path).rstrip("/") + ".model")


def export_meta(norm: dict) -> dict:
    """What an exported model needs to turn its depth back into mm (and points)."""
    import json

    return json.loads(json.dumps(norm, default=float))  # the whole normalisation, JSON-clean


def training_threads(asked: int) -> int:
    """Threads for training: all usable cores (torch's default in a Ray actor is one, which
    left the main job training on one of two idle cores).
    More than one runs the training in a process of its own (model/train_process.py says why)."""
    return asked or usable_cores()


def train_from_store(store_path: str, params: Pix2PixParams, frames: np.ndarray | None, out: Path,
                     report, stop: threading.Event | None = None) -> dict:
    """Load pairs, train (resuming), export; returns the trainer's result + export path."""
    import torch

    from facesynth.model.checkpoint import Checkpoints
    from facesynth.model.dataset import EVAL, TRAIN, load_pairs
    from facesynth.model.export import export_generator
    from facesynth.model.model_dir import check_store_identity
    from facesynth.model.train import Trainer
    from facesynth.store.frame_store import FrameStore
    from facesynth.store.identity import store_identity

    store = FrameStore.open(store_path, mode="r")
    identity = store_identity(store_path)  # recorded in checkpoints and the export; resumes compare it
    train = load_pairs(store, TRAIN, params.size, frames)
    eval_data = load_pairs(store, EVAL, params.size, frames)
    from facesynth.model.recipes import RECIPE_KEYS, recipe_config, small_set_settings
    chosen = {k: getattr(params, k) for k in RECIPE_KEYS}
    small_set = small_set_settings(params.recipe, len(train), chosen)
    cfg = recipe_config(params.recipe, size=params.size, ngf=params.ngf, ndf=params.ndf, epochs=params.epochs,
                        decay_epochs=params.decay_epochs, steps=params.steps, decay_steps=params.decay_steps,
                        eval_every_steps=params.eval_every_steps, eval_every_s=params.eval_every_s,
                        checkpoint_every_s=params.checkpoint_every_s, batch_size=params.batch_size, lr=params.lr,
                        lambda_l1=params.lambda_l1, lambda_feat=params.lambda_feat,
                        lambda_lpips=params.lambda_lpips, lpips=params.lpips, lpips_net=params.lpips_net,
                        device=params.device, amp=params.amp, seed=params.seed, max_minutes=params.max_minutes,
                        **{**chosen, **small_set})
    trainer = Trainer(cfg, out, callback=lambda name, data: report(name, **data))
    trainer.meta = {**export_meta(train.norm), "store_identity": identity}
    if store.attrs.get("depth_source"):  # "face_mesh": the depth figures are against estimated depth
        trainer.meta["depth_source"] = str(store.attrs["depth_source"])
    trainer.checkpoints = Checkpoints(out / "checkpoints", params.keep_last,
                                      verify=lambda st, path: check_store_identity(st.get("meta", {}), identity,
                                                                                   f"checkpoint {path}"))
    if len(train):  # what live inference aligns and retargets landmarks to (live/conditioning.py)
        from facesynth.model.landmark_stats import landmark_stats, store_landmarks
        trainer.meta["landmark_stats"] = landmark_stats(store_landmarks(store, train.frames, train.size), train.size)
    resumed = trainer.resume()
    planned = trainer.plan(len(train))
    report("train.start", resumed=resumed, epoch=trainer.epoch, epochs=planned.total_epochs,
           step=trainer.step, steps=planned.total_steps,
           train_frames=len(train), eval_frames=len(eval_data), device=str(trainer.device),
           amp=trainer.amp, channels_last=trainer.cl, threads=torch.get_num_threads(), model_dir=str(out),
           **({"small_set_augment": small_set} if small_set else {}))
    result = trainer.fit(train, eval_data if len(eval_data) else None,
                         should_stop=stop.is_set if stop is not None else None)
    result["resumed"] = resumed
    if result["status"] == "done":
        meta = dict(trainer.meta)
        meta.update({"epochs": trainer.epoch, "steps": trainer.step, "recipe": cfg.recipe, "eval": result.get("eval", {}),
                     "baseline": result.get("baseline", {})})
        result["path"] = str(export_generator(trainer.G_export, out / "export", meta, onnx=params.onnx))
        result["dir"] = str(out / "export")
    return result
