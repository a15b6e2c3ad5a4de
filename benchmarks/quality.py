"""What each training recipe learns for the same budget on the same store, measured alike.

Trains every variant (the original pix2pix/pix2pixHD recipe always among them) on one store for
the same number of steps or the same wall-clock minutes, evaluates each with the face metrics
of facesynth/model/metrics.py on the held-out split, times its exported generator (TorchScript
and ONNX Runtime, batch 1, `--infer-threads` threads) and prints one JSON object; writes a PNG
with the learning curves (face SSIM and depth MAE against steps) and a sample grid.

    .venv/bin/python benchmarks/quality.py --store S.zarr --size 128 --ngf 16 --steps 600
    .venv/bin/python benchmarks/quality.py --store S.zarr --size 256 --minutes 30
    .venv/bin/python benchmarks/quality.py --build-store /tmp/q.zarr --steps 300   # synthetic store

The learning rate is constant for the first half of the budget and decays linearly to zero over
the second (the original's epochs + decay_epochs, in budget fractions), so a wall-clock budget
ends decayed too. Curve points are evaluated without LPIPS; evaluation time is not budget.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facesynth.model.dataset import EVAL, TRAIN, load_pairs  # noqa: E402
from facesynth.model.export import ONNX_NAME, TS_NAME, export_generator  # noqa: E402
from facesynth.model.generator import apply_background_mask  # noqa: E402
from facesynth.model.metrics import FACE_KEYS, evaluate, mean_image_baseline  # noqa: E402
from facesynth.model.recipes import recipe_config  # noqa: E402
from facesynth.model.train import Trainer  # noqa: E402

_MAIN = {"ssim_weight": 20.0, "lpips_face": True, "beta1": 0.9}
# the main job's losses (graphs/capture_to_model.yaml) at batch 1: L1 + face SSIM + face-box LPIPS, no GAN terms
FACE_LOSSES = {"warmup_steps": 10 ** 9, **_MAIN, "depth_weight": 5.0, "lr": 5e-4}


def _nogan(**overrides) -> tuple[str, dict]:
    """The facesynth recipe without GAN terms (warm-up past any budget), with `overrides`."""
    return "facesynth", {"warmup_steps": 10 ** 9, **overrides}


# name -> (recipe, overrides); "original+x" adds one facesynth choice to the original
VARIANTS: dict[str, tuple[str, dict]] = {
    "original": ("original", {}),
    "facesynth": ("facesynth", {}),
    "original+resize": ("original", {"upsample": "resize"}),
    "original+instance": ("original", {"norm": "instance", "dropout": 0.0}),
    "original+ema": ("original", {"ema": 0.99}),
    "original+warmup": ("original", {"warmup_steps": 200}),
    "original+depth2": ("original", {"depth_weight": 2.0}),
    "original+shift": ("original", {"augment_px": 4}),
    "facesynth-noema": ("facesynth", {"ema": 0.0}),
    "facesynth-nowarmup": ("facesynth", {"warmup_steps": 0}),
    "facesynth-warmup400": ("facesynth", {"warmup_steps": 400}),
    "facesynth-nogan": ("facesynth", {"warmup_steps": 10 ** 9}),   # L1 + LPIPS only, never D
    "facesynth-nogan-lr2x": ("facesynth", {"warmup_steps": 10 ** 9, "lr": 1e-3}),
    "facesynth-nogan-ngf24": ("facesynth", {"warmup_steps": 10 ** 9, "ngf": 24}),
    "facesynth-nogan-batch8": ("facesynth", {"warmup_steps": 10 ** 9, "batch_size": 8}),
    # the loss rounds of docs/model.md "Main job" (128 px, no GAN terms)
    "facesynth-nogan-ssim10": _nogan(ssim_weight=10.0),
    "facesynth-nogan-ssim20": _nogan(ssim_weight=20.0),
    "facesynth-nogan-ssim30": _nogan(ssim_weight=30.0),
    "facesynth-nogan-ssim10-nolpips": _nogan(ssim_weight=10.0, lpips=False),
    "facesynth-nogan-depth4": _nogan(depth_weight=4.0),
    "facesynth-nogan-ssim20-lpface": _nogan(ssim_weight=20.0, lpips_face=True),
    "facesynth-nogan-ssim20-lpface-depth4": _nogan(ssim_weight=20.0, lpips_face=True, depth_weight=4.0),
    "facesynth-nogan-ssim20-lpface-beta09": _nogan(ssim_weight=20.0, lpips_face=True, beta1=0.9),
    "main": _nogan(**_MAIN, depth_weight=5.0),   # the main job's settings (its lr: --lr 1.2e-3)
    # real faces (issue 21): augmentation and the eye/mouth weight on the main job's settings
    "main-aug": _nogan(**_MAIN, depth_weight=5.0, augment_scale=0.05, augment_rotate_deg=5.0, augment_px=3),
    "main-geo": _nogan(**_MAIN, depth_weight=5.0, augment_scale=0.05, augment_rotate_deg=5.0),
    "main-jitter": _nogan(**_MAIN, depth_weight=5.0, augment_jitter=0.1),
    "main-detail2": _nogan(**_MAIN, depth_weight=5.0, detail_weight=2.0),
    "main-d8": _nogan(**_MAIN, depth_weight=8.0),
    "main-aug-detail2": _nogan(**_MAIN, depth_weight=5.0, augment_scale=0.05, augment_rotate_deg=5.0, augment_px=3,
                               detail_weight=2.0),
    "main-aug10-detail2": _nogan(**_MAIN, depth_weight=5.0, augment_scale=0.1, augment_rotate_deg=10.0, augment_px=6,
                                 detail_weight=2.0),
    "main-d4": _nogan(**_MAIN, depth_weight=4.0),
    "main-d6": _nogan(**_MAIN, depth_weight=6.0),
    "main-d6-s30": _nogan(**{**_MAIN, "ssim_weight": 30.0}, depth_weight=6.0),
    "main-d4-lr8": _nogan(**_MAIN, depth_weight=4.0, lr=8e-4),
    "main-d4-b8-lr8": _nogan(**_MAIN, depth_weight=4.0, lr=8e-4, batch_size=8),
    "main-d4-lr12": _nogan(**_MAIN, depth_weight=4.0, lr=1.2e-3),
    "main-d5-lr8": _nogan(**_MAIN, depth_weight=5.0, lr=8e-4),
    "facesynth-ngf10": ("facesynth", {"ngf": 10}),   # the live variant before: GAN terms from step 200
    "facesynth-face": ("facesynth", FACE_LOSSES),
    # the live variant: 74-85 frames/s at 256 px on 2 idle cores (README); LPIPS x40 for the texture a small net loses
    "facesynth-fast": ("facesynth", {**FACE_LOSSES, "ngf": 10, "lambda_lpips": 40.0}),
    "facesynth-fast-lpips10": ("facesynth", {**FACE_LOSSES, "ngf": 10}),
    "facesynth-fast12": ("facesynth", {"ngf": 12}),
    "facesynth-fast16": ("facesynth", {"ngf": 16}),
    "facesynth-fast8": ("facesynth", {"ngf": 8}),
}


def build_store(path: Path, train: int, eval_: int) -> Path:
    """The README main job's capture -> landmarks -> crop -> fill on the synthetic camera."""
    from facesynth.runtime.api import run_graph

    graph = Path(__file__).resolve().parents[1] / "graphs" / "capture_to_model.yaml"
    res = run_graph(str(graph), backend="local", overrides=[
        f"store.path={path}", f"nodes.camera.params.frames={{train: {train}, eval: {eval_}}}",
        "nodes.train.params.epochs=0", "nodes.train.params.decay_epochs=0", "nodes.train.params.onnx=false"])
    if res.status != "ok":
        raise SystemExit(f"building the store failed: {res.status}")
    return path


def lr_budget_factor(progress: float) -> float:
    return 1.0 if progress < 0.5 else max(0.0, 2.0 * (1.0 - progress))


def _median_ms(fn, x, repeats: int, warmup: int = 5, clock=time.perf_counter) -> float:
    """Median ms of one call by `clock` (wall by default; time.process_time: CPU of all threads)."""
    for _ in range(warmup):  # TorchScript's profiling executor optimises after a few calls
        fn(x)
    times = []
    for _ in range(repeats):
        t = clock()
        fn(x)
        times.append((clock() - t) * 1000.0)
    return round(statistics.median(times), 3)


def generator_gmacs(gen, size: int) -> float:
    """Multiply-accumulates of one forward pass (convolutions), in billions: a speed figure that
    load from other processes cannot move."""
    total = [0]

    def hook(m, inp, out):
        k = m.weight.shape[2] * m.weight.shape[3]
        if isinstance(m, torch.nn.ConvTranspose2d):  # every input pixel meets every tap
            total[0] += inp[0].numel() * m.out_channels * k // m.groups
        else:
            total[0] += out.numel() * (m.in_channels // m.groups) * k
    hs = [m.register_forward_hook(hook) for m in gen.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        gen.eval()(torch.zeros(1, 1, size, size))
    for h in hs:
        h.remove()
    return round(total[0] / 1e9, 3)


def time_exported(gen, size: int, threads: int, repeats: int, meta: dict) -> dict:
    """ms/frame of the exported generator (mask inside): TorchScript and ONNX Runtime (wall), and
    ONNX Runtime's CPU ms/frame with one thread (no spinning) next to it."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        export_generator(gen, d, meta, onnx=True)
        x = torch.zeros(1, 1, size, size)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ts = torch.jit.load(str(Path(d) / TS_NAME)).eval()
            with torch.no_grad():
                ts_ms = _median_ms(ts, x, repeats)
        finally:
            torch.set_num_threads(before)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(Path(d) / ONNX_NAME), opts, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        ort_ms = _median_ms(lambda a: sess.run(None, {"drawing": a}), xn, repeats)
        one = ort.SessionOptions()
        one.intra_op_num_threads, one.inter_op_num_threads = 1, 1
        one.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess1 = ort.InferenceSession(str(Path(d) / ONNX_NAME), one, providers=["CPUExecutionProvider"])
        cpu1 = _median_ms(lambda a: sess1.run(None, {"drawing": a}), xn, repeats, warmup=1, clock=time.process_time)
    return {"torchscript_ms": ts_ms, "onnxruntime_ms": ort_ms, "onnxruntime_fps": round(1000.0 / ort_ms, 1),
            "onnxruntime_1thread_cpu_ms": cpu1, "gmacs": generator_gmacs(copy.deepcopy(gen).cpu().float(), size)}


def train_variant(name: str, args, train, eval_data, lpips_fn, run_dir: Path) -> tuple[dict, torch.Tensor]:
    recipe, overrides = VARIANTS[name]
    settings = {"size": args.size, "ngf": args.ngf, "ndf": args.ndf, "batch_size": args.batch_size,
                "lr": args.lr, "lpips": not args.no_lpips, "device": args.device, "seed": args.seed,
                **overrides}
    cfg = recipe_config(recipe, **settings)
    torch.manual_seed(args.seed)
    tr = Trainer(cfg, run_dir / name)
    tr.meta = dict(train.norm)
    budget_s = args.minutes * 60.0 if args.minutes else None
    steps_max = args.steps or 10 ** 9
    curve, step, train_s, last_eval = [], 0, 0.0, 0.0
    rng = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(len(train), generator=rng), 0
    while step < steps_max and (budget_s is None or train_s < budget_s):
        progress = max(step / steps_max if args.steps else 0.0, train_s / budget_s if budget_s else 0.0)
        tr._set_lr(lr_budget_factor(progress))
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(train), generator=rng), 0
        b = perm[pos:pos + cfg.batch_size]
        x, y = train.batch(b, tr.device)
        pos += cfg.batch_size
        t = time.perf_counter()
        tr.train_step(x, y, train.detail_batch(b) if cfg.detail_weight > 0 else None)
        train_s += time.perf_counter() - t
        step += 1
        tr.step = step
        due = (step % args.eval_every == 0) if not budget_s else (train_s - last_eval >= budget_s / args.curve_points)
        if due:
            last_eval = train_s
            m = evaluate(tr.predict, eval_data, None, device=tr.device)
            curve.append({"step": step, "train_s": round(train_s, 1), "face_ssim": round(m["face_ssim"], 4),
                          "depth_mae_mm": round(m["depth_mae_mm"], 3)})
            print(f"[{name}] step {step} {train_s:.0f}s ssim {m['face_ssim']:.3f} mae {m['depth_mae_mm']:.2f}",
                  file=sys.stderr, flush=True)
    final = evaluate(tr.predict, eval_data, lpips_fn, device=tr.device)
    if not curve or curve[-1]["step"] != step:
        curve.append({"step": step, "train_s": round(train_s, 1), "face_ssim": round(final["face_ssim"], 4),
                      "depth_mae_mm": round(final["depth_mae_mm"], 3)})
    x, _ = eval_data.batch(list(range(min(args.samples, len(eval_data)))), tr.device)
    sample = apply_background_mask(tr.predict(x)).cpu()
    gen = tr.G_export
    res = {"recipe": recipe, "overrides": overrides, "steps": step, "train_s": round(train_s, 1),
           "steps_per_s": round(step / max(train_s, 1e-9), 3),
           "params": sum(p.numel() for p in gen.parameters()),
           "eval": {k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()},
           "curve": curve, **time_exported(gen, args.size, args.infer_threads, args.repeats, tr.meta)}
    return res, sample


def ratios(variants: dict, ref: str = "original") -> dict:
    """metric(variant) / metric(original), per face metric (MAE/LPIPS: < 1 is better)."""
    out = {}
    base = variants[ref]["eval"]
    for name, v in variants.items():
        out[name] = {k: round(v["eval"][k] / base[k], 3) for k in FACE_KEYS
                     if k in v["eval"] and base.get(k)}
        out[name]["onnxruntime_ms"] = round(v["onnxruntime_ms"] / variants[ref]["onnxruntime_ms"], 3)
    return out


def write_png(path: Path, variants: dict, samples: dict, x: torch.Tensor, y: torch.Tensor) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def img(t):
        return ((t.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()

    n_s = x.shape[0]
    rows = len(samples) + 1
    fig = plt.figure(figsize=(4 + 2 * n_s * 2, max(6, 1.6 * rows)))
    grid = fig.add_gridspec(max(2, rows), 1 + 2 * n_s, width_ratios=[4] + [1] * (2 * n_s))
    for r, key in enumerate(("face_ssim", "depth_mae_mm")):
        ax = fig.add_subplot(grid[r * (max(2, rows) // 2):(r + 1) * (max(2, rows) // 2), 0])
        for name, v in variants.items():
            ax.plot([c["step"] for c in v["curve"]], [c[key] for c in v["curve"]], label=name, marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if r == 0:
            ax.legend(fontsize=6)
    names = ["truth"] + list(samples)
    for r, name in enumerate(names):
        t = y if name == "truth" else samples[name]
        for i in range(n_s):
            for j, (im, cmap) in enumerate(((img(t[i, :3]), None), (img(t[i, 3:])[..., 0], "gray"))):
                ax = fig.add_subplot(grid[r, 1 + 2 * i + j])
                ax.imshow(im, cmap=cmap, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0 and j == 0:
                    ax.set_ylabel(name, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--build-store", type=Path, help="build a synthetic store here first (main job stages)")
    ap.add_argument("--frames", type=int, nargs=2, default=(240, 40), metavar=("TRAIN", "EVAL"))
    ap.add_argument("--variants", nargs="+", default=["original", "facesynth"], choices=sorted(VARIANTS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=None, help="default: = ngf")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="training steps per variant")
    budget.add_argument("--minutes", type=float, help="training wall-clock minutes per variant")
    ap.add_argument("--eval-every", type=int, default=100, help="curve point every N steps (--steps)")
    ap.add_argument("--curve-points", type=int, default=8, help="curve points per variant (--minutes)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for training (0: every core)")
    ap.add_argument("--infer-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "facesynth_quality",
                    help="where the PNG and the JSON go (default: TMPDIR/facesynth_quality)")
    ap.add_argument("--split-run", action="store_true",
                    help="no 'original' here: one part of a comparison split over processes")
    args = ap.parse_args(argv)
    args.ndf = args.ndf or args.ngf
    if "original" not in args.variants and not args.split_run:
        args.variants.insert(0, "original")  # every gain is a ratio to the original, same run
    if args.build_store:
        args.store = build_store(args.build_store, *args.frames)
    if args.store is None:
        ap.error("--store or --build-store is required")
    args.threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(args.threads)  # training runs in this (the main) thread: model/train_process.py says why
    from facesynth.store.frame_store import FrameStore

    store = FrameStore.open(str(args.store), mode="r")
    train, eval_data = load_pairs(store, TRAIN, args.size), load_pairs(store, EVAL, args.size)
    if not len(train) or not len(eval_data):
        raise SystemExit(f"{args.store}: needs accepted train and eval frames ({len(train)}, {len(eval_data)})")
    lpips_fn = None
    if not args.no_lpips:
        from facesynth.model.lpips import LPIPS
        lpips_fn = LPIPS("alexnet")
    mean = mean_image_baseline(eval_data)
    baseline = evaluate(lambda xb: mean.expand(xb.shape[0], -1, -1, -1), eval_data, lpips_fn)
    args.out.mkdir(parents=True, exist_ok=True)
    variants, samples = {}, {}
    with tempfile.TemporaryDirectory() as runs:
        for name in args.variants:
            variants[name], samples[name] = train_variant(name, args, train, eval_data, lpips_fn, Path(runs))
    x, y = eval_data.batch(list(range(min(args.samples, len(eval_data)))))
    png = args.out / f"quality_{args.size}.png"
    write_png(png, variants, samples, x, y)
    report = {"store": str(args.store), "size": args.size, "ngf": args.ngf, "ndf": args.ndf,
              "batch_size": args.batch_size, "train_frames": len(train), "eval_frames": len(eval_data),
              "budget": {"steps": args.steps} if args.steps else {"minutes": args.minutes},
              "train_threads": args.threads, "infer_threads": args.infer_threads,
              "baseline": {k: round(v, 4) if isinstance(v, float) else v for k, v in baseline.items()},
              "variants": variants, "png": str(png),
              "ratio_to_original": ratios(variants) if "original" in variants else {}}
    (args.out / f"quality_{args.size}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
