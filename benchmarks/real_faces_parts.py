"""The pieces of benchmarks/real_faces.py that are not the runs themselves: events of a run log,
held-out samples, the live-path self-reenactment and the PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

CURVE_KEYS = ("face_ssim", "depth_mae_mm", "face_lpips")


def run_log_events(records: list[dict]) -> tuple[dict, list[dict]]:
    """(the train.start event, every train.epoch event) of one run's records."""
    start = next((r for r in records if r.get("name") == "train.start"), {})
    return start, [r for r in records if r.get("name") == "train.epoch"]


def load_held_out(store: str | Path, size: int, n: int):
    """`n` held-out pairs spread over the eval split: (drawings, targets), each (n, C, S, S)."""
    from facesynth.model.dataset import EVAL, load_pairs
    from facesynth.store.frame_store import FrameStore

    data = load_pairs(FrameStore.open(str(store), mode="r"), EVAL, size)
    idx = np.unique(np.linspace(0, len(data) - 1, min(n, len(data))).round().astype(int)).tolist()
    return data.batch(idx)


def samples_of(recipes: dict, held) -> dict:
    """{"drawing", "truth", <recipe>: masked prediction} for the held-out drawings, from each export."""
    from facesynth.model.export import load_exported

    x, y = held
    out = {"drawing": x, "truth": y}
    for name, res in recipes.items():
        with torch.no_grad():
            out[name] = load_exported(res["export"]).module(x).float()
    return out


def _warp(t: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """(C, S, S) in [-1, 1] moved by the 2x3 similarity `m`, nearest, background -1 outside."""
    import cv2

    moved = [cv2.warpAffine(c + 1.0, m, (size, size), flags=cv2.INTER_NEAREST, borderValue=0.0) - 1.0 for c in t]
    return np.stack(moved).astype(np.float32)


def live_reenactment(export: str | Path, store: str | Path, lpips_fn) -> dict:
    """The held-out frames' real landmarks through the live path (live.condition's Conditioner, then
    live.generator's LiveGenerator: drawing, exported weights, background mask), compared with the
    real frames: `as_captured` feeds the crop landmarks unchanged (the output lies on the real crop),
    `aligned` aligns them to the trained mean shape as the live demo does (the real frame is moved
    by the same similarity before comparing)."""
    from facesynth.live.conditioning import STABLE_POINTS, ConditionConfig, Conditioner, TrainedLandmarks, fit_similarity
    from facesynth.live.output_nodes import LiveGenerator
    from facesynth.model.dataset import EVAL, load_pairs
    from facesynth.model.landmark_stats import store_landmarks
    from facesynth.model.metrics import face_lpips, face_ssim
    from facesynth.store.frame_store import FrameStore

    gen = LiveGenerator(str(export))
    size = gen.size
    fs = FrameStore.open(str(store), mode="r")
    data = load_pairs(fs, EVAL, size)
    points = store_landmarks(fs, data.frames, size)
    trained = TrainedLandmarks.from_meta(gen.meta, size)
    stable = list(STABLE_POINTS)
    out: dict = {"frames": len(data)}
    for mode, align in (("as_captured", False), ("aligned", True)):
        cond = Conditioner(trained, ConditionConfig(align=align, rotation=True))
        preds, truths, ms = [], [], []
        for i, p in enumerate(points):
            _, y = data.batch([i])
            pred, gen_ms = gen.infer(cond(p, i / 24.0))
            truth = y[0].numpy()
            if align:
                scale, r, t = fit_similarity(p[stable], trained.mean[stable])
                truth = _warp(truth, np.hstack([scale * r, t[:, None]]).astype(np.float32), size)
            preds.append(pred)
            truths.append(truth)
            ms.append(gen_ms)
        pred_t, truth_t = torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths))
        face = truth_t[:, 3:] > -1.0
        res = {"face_ssim": float(face_ssim(pred_t[:, :3], truth_t[:, :3], face).nanmean()),
               "generator_ms_median": float(np.median(ms))}
        if lpips_fn is not None:
            res["face_lpips"] = float(face_lpips(lpips_fn, pred_t, truth_t, face).nanmean())
        out[mode] = res
    return out


def write_png(path: Path, panels: list[tuple[str, dict, dict]]) -> None:
    """Learning curves (face SSIM, depth MAE, face LPIPS against steps, every set and recipe) on
    top; below, per set, rows of held-out samples: drawing | each recipe's colour, depth | truth."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def img(t):
        return ((t.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()

    rows = sum(s["drawing"].shape[0] for _, _, s in panels)
    recipes = [k for k in panels[0][2] if k not in ("drawing", "truth")]
    cols = 1 + 2 * (len(recipes) + 1)
    fig = plt.figure(figsize=(max(12, 1.6 * cols), 3.2 + 1.6 * rows))
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[2.0] + [1.0] * rows)
    per = max(1, cols // len(CURVE_KEYS))
    for j, key in enumerate(CURVE_KEYS):
        ax = fig.add_subplot(grid[0, j * per:(j + 1) * per if j < len(CURVE_KEYS) - 1 else cols])
        for set_name, entry, _ in panels:
            for recipe, res in entry["recipes"].items():
                pts = [(c["step"], c[key]) for c in res["curve"] if c.get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker=".", label=f"{set_name} {recipe}",
                            linestyle="-" if recipe == "default" else "--")
        ax.set_title(key + (" (video: vs estimated depth)" if key == "depth_mae_mm" else ""), fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(fontsize=5)
    r = 1
    for set_name, _, s in panels:
        for i in range(s["drawing"].shape[0]):
            tiles = [(img(s["drawing"][i])[..., 0], "gray", "drawing")]
            for name in (*recipes, "truth"):
                tiles += [(img(s[name][i, :3]), None, f"{name} colour"), (img(s[name][i, 3:])[..., 0], "gray", f"{name} depth")]
            for c, (im, cmap, title) in enumerate(tiles):
                ax = fig.add_subplot(grid[r, c])
                ax.imshow(im, cmap=cmap, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 1:
                    ax.set_title(title, fontsize=7)
                if c == 0:
                    ax.set_ylabel(set_name, fontsize=7)
            r += 1
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
