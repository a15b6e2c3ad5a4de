"""Named training recipes: `original` (the faithful pix2pix / pix2pixHD setting) and
`facesynth` (the default, each choice kept because benchmarks/quality.py measured it better;
figures in docs/model.md). A recipe fills the TrainConfig options the user left unset.
"""
from __future__ import annotations

from dataclasses import fields

from facesynth.model.train import TrainConfig

RECIPE_KEYS = ("upsample", "norm", "dropout", "ema", "warmup_steps", "depth_weight", "augment_px",
               "augment_scale", "augment_rotate_deg", "augment_jitter", "augment_until", "detail_weight",
               "ssim_weight", "lpips_face", "beta1")

RECIPES: dict[str, dict] = {
    # pix2pix U-Net (transposed convs, BatchNorm, dropout 0.5) + pix2pixHD losses from step 0
    "original": {"upsample": "transpose", "norm": "batch", "dropout": 0.5, "ema": 0.0,
                 "warmup_steps": 0, "depth_weight": 1.0, "augment_px": 0, "augment_scale": 0.0,
                 "augment_rotate_deg": 0.0, "augment_jitter": 0.0, "augment_until": 1.0, "detail_weight": 0.0,
                 "ssim_weight": 0.0, "lpips_face": False, "beta1": 0.5},
    # resize-convolutions (no checkerboard in the depth), instance norm (train == export at any
    # batch size), no dropout, an EMA of G for export, L1 + LPIPS warm-up, depth L1 x2
    "facesynth": {"upsample": "resize", "norm": "instance", "dropout": 0.0, "ema": 0.99,
                  "warmup_steps": 200, "depth_weight": 2.0, "augment_px": 0, "augment_scale": 0.0,
                  "augment_rotate_deg": 0.0, "augment_jitter": 0.0, "augment_until": 1.0, "detail_weight": 0.0,
                  "ssim_weight": 0.0, "lpips_face": False, "beta1": 0.5},
}
# A real capture may be a few dozen frames (the TrueDepth sequence: 28 to train on): the net sees
# each pose hundreds of times and learns those poses, not the face. Below this many training
# frames the facesynth recipe moves drawing and target alike (model/augment.py) for the first half
# of the steps, then trains on the pairs as captured (the resampled targets are a little soft),
# unless the graph sets an augment_* option; measured on real faces by benchmarks/real_faces.py
# (docs/model.md "Real faces").
SMALL_SET_FRAMES = 200
SMALL_SET_AUGMENT = {"augment_scale": 0.05, "augment_rotate_deg": 5.0, "augment_px": 3, "augment_until": 0.5}
RECIPE_NAMES = tuple(RECIPES)
DEFAULT_RECIPE = "facesynth"


def recipe_config(recipe: str = DEFAULT_RECIPE, **settings) -> TrainConfig:
    """TrainConfig of `recipe`, with every `settings` entry that is not None taking precedence."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_NAMES)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}")
    values = {**RECIPES[recipe], **{k: v for k, v in settings.items() if v is not None}}
    return TrainConfig(recipe=recipe, **values)


def small_set_settings(recipe: str, n_train: int, given: dict) -> dict:
    """The augmentation a small training set gets under `recipe` (empty when the set is large, the
    recipe is `original`, or the user set any augment_* option in `given`)."""
    if recipe != "facesynth" or n_train >= SMALL_SET_FRAMES:
        return {}
    if any(given.get(k) is not None for k in RECIPE_KEYS if k.startswith("augment_")):
        return {}
    return dict(SMALL_SET_AUGMENT)
