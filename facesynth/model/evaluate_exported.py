"""Evaluate an exported generator on a store's eval split, next to the mean-image baseline.

The depth figures are only as true as the store's depth: a colour-only capture's depth is
estimated from the face mesh (store attribute `depth_source`: "face_mesh"), so the result names
the store's depth source and the one the model was trained on (generator.json)."""
from __future__ import annotations

from pathlib import Path

from facesynth.model.arch import DEFAULT_MEMORY_BUDGET
from facesynth.model.export_meta import check_export


def evaluate_exported(model_path: str | Path, store_path: str | Path, lpips: bool = True,
                      batch_size: int = 8, format: str = "weights",
                      memory_budget: int = DEFAULT_MEMORY_BUDGET) -> dict:
    """Metrics of the export; `format="torchscript"` (runs code from the file) only for trusted files.
    The export's files are checked before torch is imported (a crafted one is refused in a moment)."""
    checked = check_export(model_path, format, memory_budget)

    from facesynth.errors import InputDataError
    from facesynth.model.dataset import EVAL, load_pairs
    from facesynth.model.export import load_checked
    from facesynth.model.metrics import beats_baseline, evaluate, generator_ms_per_frame, mean_image_baseline
    from facesynth.store.frame_store import FrameStore

    model = load_checked(checked)
    store = FrameStore.open(store_path, mode="r")
    data = load_pairs(store, EVAL, model.size)
    if len(data) == 0:
        raise InputDataError(f"store {store_path} has no accepted eval frames")
    lp = None
    if lpips:
        from facesynth.model.lpips import LPIPS
        lp = LPIPS("alexnet")
    res = evaluate(model.module, data, lp, batch_size)
    mean = mean_image_baseline(data)
    base = evaluate(lambda x: mean.expand(x.shape[0], -1, -1, -1), data, lp, batch_size)
    return {"model": str(model.path), "format": model.format, "store": str(store_path), "frames": len(data), "size": model.size,
            "depth_source": store.attrs.get("depth_source"), "trained_depth_source": model.meta.get("depth_source"),
            "model_metrics": res, "baseline": base, "beats_baseline": beats_baseline(res, base),
            "generator_ms": generator_ms_per_frame(model.module, model.size)}


def depth_source_words(source) -> str:
    """What a `depth_source` value means, for a person reading depth figures (control characters
    escaped: it comes from a file)."""
    from facesynth.terminal_text import shown

    if source is None:
        return "depth source not recorded"
    if source == "face_mesh":
        return "depth estimated from the face mesh"
    return f"depth measured by {shown(source, 80)}"
