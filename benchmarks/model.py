"""Training steps/s and generator ms/frame at 256 and 512, each optimisation next to the plain
network (fp32, default NCHW memory format, eager, no compilation) measured in the same run; and
the trainer's steps/s next to a bare PyTorch loop of the same model and loss on a small set
(`bookkeeping`: what evaluation, previews and checkpoints cost, by the old per-epoch cadence and
by the default one).

    .venv/bin/python benchmarks/model.py --quick            # ~2 min on an idle 2-core machine
    .venv/bin/python benchmarks/model.py --sizes 256 --steps 5
    .venv/bin/python benchmarks/model.py --bookkeeping-only --bookkeeping-steps 280

Prints one JSON object: per size, per variant, the median seconds and the ratio to plain
(>1 = faster), plus how long assembling a batch from the preloaded data takes next to a step.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facesynth.model.dataset import PairData  # noqa: E402
from facesynth.model.generator import UNetGenerator  # noqa: E402
from facesynth.model.train import Trainer, TrainConfig  # noqa: E402

TRAIN_VARIANTS = {"plain": ("off", "off"), "channels_last": ("off", "on"), "bf16_autocast": ("bf16", "off")}


CPU_S: dict[str, float] = {}  # process CPU seconds of the last _round_robin, per variant


def _round_robin(fns: dict, warmup: int, repeats: int) -> dict[str, float]:
    """Median wall seconds per variant, the variants interleaved so that load from other
    processes on this shared machine falls on all of them alike. The median process CPU
    seconds (all threads) go to CPU_S: less sensitive to other processes than wall time."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    CPU_S.clear()
    CPU_S.update({k: statistics.median(v) for k, v in cpu.items()})
    return {k: statistics.median(v) for k, v in times.items()}


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def bench_train(size: int, ngf: int, steps: int, lpips: bool, device: str, tmp: str,
                variants: list[str]) -> dict:
    x = torch.rand(1, 1, size, size) * 2 - 1
    y = torch.rand(1, 4, size, size) * 2 - 1
    fns = {}
    for name in variants:
        amp, cl = TRAIN_VARIANTS[name]
        cfg = TrainConfig(size=size, ngf=ngf, ndf=ngf, lpips=lpips, device=device, amp=amp, channels_last=cl)
        tr = Trainer(cfg, tmp)
        xd, yd, sync = x.to(tr.device), y.to(tr.device), _sync(tr.device)
        fns[name] = (lambda tr=tr, xd=xd, yd=yd, sync=sync: (tr.train_step(xd, yd), sync()))
    secs = _round_robin(fns, 1, steps)
    return {k: {"step_s": round(s, 4), "steps_per_s": round(1.0 / s, 3),
                "speedup_vs_plain": round(secs["plain"] / s, 3), "cpu_s": round(CPU_S[k], 4),
                "cpu_speedup_vs_plain": round(CPU_S["plain"] / CPU_S[k], 3)} for k, s in secs.items()}


def bench_forward(size: int, ngf: int, repeats: int, device: str, bf16: bool) -> dict:
    dev = torch.device(device)
    torch.manual_seed(0)
    plain = UNetGenerator(size, ngf).eval().to(dev)
    x = torch.zeros(1, 1, size, size, device=dev)
    sync = _sync(dev)

    def run(model, inp, ctx=contextlib.nullcontext):
        def f():
            with torch.inference_mode(), ctx():
                model(inp)
            sync()
        return f

    fns = {"plain": run(plain, x)}
    cl = UNetGenerator(size, ngf).eval().to(dev).to(memory_format=torch.channels_last)
    cl.load_state_dict(plain.state_dict())
    fns["channels_last"] = run(cl, x.contiguous(memory_format=torch.channels_last))
    if bf16:
        fns["bf16_autocast"] = run(plain, x, lambda: torch.autocast(dev.type, dtype=torch.bfloat16))
    with torch.no_grad():
        traced = torch.jit.trace(plain, x)  # the exported format
        frozen = torch.jit.freeze(torch.jit.trace(plain, x))
    fns["torchscript_traced"] = run(traced, x)
    fns["torchscript_frozen"] = run(frozen, x)
    secs = _round_robin(fns, 1, repeats)
    return {k: {"ms_per_frame": round(s * 1000.0, 2), "speedup_vs_plain": round(secs["plain"] / s, 3),
                "cpu_ms": round(CPU_S[k] * 1000.0, 2),
                "cpu_speedup_vs_plain": round(CPU_S["plain"] / CPU_S[k], 3)}
            for k, s in secs.items()}


def bench_data(size: int, n: int = 64, batch: int = 1, repeats: int = 50) -> dict:
    """Cost of assembling a batch from the in-memory uint8/float16 tensors."""
    data = PairData(torch.zeros(n, 1, size, size, dtype=torch.uint8), torch.zeros(n, 3, size, size, dtype=torch.uint8),
                    torch.zeros(n, 1, size, size, dtype=torch.float16), torch.zeros(n, 1, size, size, dtype=torch.bool),
                    frames=None)
    s = _round_robin({"batch": lambda: data.batch([3] * batch)}, 2, repeats)["batch"]
    return {"batch_ms": round(s * 1000.0, 3)}


def bench_bookkeeping(steps: int, repeats: int, frames: tuple[int, int] = (28, 6), size: int = 128) -> dict:
    """Trainer.fit vs a bare loop (same G, Adam, loss and batches) on a small set at the main job's
    settings (128 px, ngf 16, batch 4, L1 + face SSIM + face-box LPIPS): steps/s of each and the
    share of the trainer's wall time not spent in training steps. The variants take turns, so
    other processes' load falls on all of them alike; medians over `repeats`."""
    from facesynth.model.dataset import EVAL, TRAIN, load_pairs
    from facesynth.model.losses import reconstruction_loss
    from facesynth.model.recipes import recipe_config
    from facesynth.model.toy_data import write_toy_store

    main_job = dict(size=size, ngf=16, ndf=16, batch_size=4, lr=1.2e-3, warmup_steps=10 ** 9, ssim_weight=20.0,
                    lpips_face=True, depth_weight=5.0, beta1=0.9, steps=steps, device="cpu")
    per_epoch = -(-frames[0] // 4)
    cadences = {"trainer_per_epoch": {"eval_every_steps": per_epoch, "eval_every_s": 0.0, "checkpoint_every_s": 0.0},
                "trainer_default": {}}
    with tempfile.TemporaryDirectory() as tmp:
        store = write_toy_store(Path(tmp) / "s.zarr", n_train=frames[0], n_eval=frames[1], size=size)
        train, ev = load_pairs(store, TRAIN), load_pairs(store, EVAL)
        runs: dict[str, list[dict]] = {"bare_loop": [], **{k: [] for k in cadences}}
        for r in range(repeats):
            for name, cadence in cadences.items():
                tr = Trainer(recipe_config("facesynth", **main_job, **cadence), Path(tmp) / f"{name}{r}")
                t = time.perf_counter()
                tr.fit(train, ev)
                wall = time.perf_counter() - t
                step_s = sum(h["epoch_s"] for h in tr.history)
                runs[name].append({"wall_s": wall, "train_s": step_s, "evals": len(tr.history),
                                   "eval_s": sum(h["eval_s"] for h in tr.history)})
            tr = Trainer(recipe_config("facesynth", **main_job), Path(tmp) / "bare")  # G, loss weights, LPIPS
            opt = torch.optim.Adam(tr.G.parameters(), lr=tr.cfg.lr, betas=(tr.cfg.beta1, 0.999))
            t = time.perf_counter()
            for i in range(steps):
                g = torch.Generator().manual_seed(i // per_epoch)
                b = torch.randperm(len(train), generator=g)[(i % per_epoch) * 4:(i % per_epoch + 1) * 4]
                x, y = train.batch(b)
                loss, _ = reconstruction_loss(tr.G(x), y, tr.weights, tr.lpips)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            wall = time.perf_counter() - t
            runs["bare_loop"].append({"wall_s": wall, "train_s": wall, "evals": 0, "eval_s": 0.0})
    out = {"steps": steps, "repeats": repeats, "frames": list(frames), "size": size, "steps_per_epoch": per_epoch,
           "settings": "main job: ngf 16, batch 4, L1 + face SSIM x20 + face-box LPIPS, EMA, one eval at the end or more"}
    bare = statistics.median(r["wall_s"] for r in runs["bare_loop"])
    for name, rs in runs.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        out[name] = {"steps_per_s": round(steps / wall, 3), "wall_s": round(wall, 2),
                     "vs_bare_loop": round(bare / wall, 3), "evaluations": rs[0]["evals"],
                     "bookkeeping_share": round(statistics.median(1 - r["train_s"] / r["wall_s"] for r in rs), 3),
                     "eval_preview_s": round(statistics.median(r["eval_s"] for r in rs), 2)}
    return out


def _trainer_choice(device: str) -> dict:
    """What Trainer's 'auto' settings pick on this device (the plain network on CPU)."""
    from facesynth.model.train import resolve_device, use_amp, use_channels_last

    cfg, dev = TrainConfig(device=device), resolve_device(device)
    return {"bf16_autocast": use_amp(cfg, dev), "channels_last": use_channels_last(cfg, dev)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewest steps/repeats (about a minute or two)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bookkeeping-steps", type=int, default=140, help="steps per run of the bookkeeping part")
    ap.add_argument("--bookkeeping-repeats", type=int, default=3)
    ap.add_argument("--bookkeeping-only", action="store_true", help="only the trainer vs bare loop part")
    args = ap.parse_args(argv)
    res = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
                       "cuda": torch.cuda.get_device_name(0) if args.device == "cuda" else None},
           "ngf": args.ngf, "lpips": not args.no_lpips, "sizes": {},
           "trainer_uses_here": _trainer_choice(args.device)}
    t0 = time.perf_counter()
    if args.device == "cpu":
        res["bookkeeping"] = bench_bookkeeping(70 if args.quick else args.bookkeeping_steps,
                                               1 if args.quick else args.bookkeeping_repeats)
    with tempfile.TemporaryDirectory() as tmp:
        for size in ([] if args.bookkeeping_only else args.sizes):
            steps = 2 if args.quick else args.steps
            reps = 3 if args.quick else args.repeats
            # bf16 autocast on a CPU without bf16 instructions is 7-14x slower (full run at 256):
            # --quick leaves it out on CPU to stay short
            cpu_quick = args.quick and args.device == "cpu"
            variants = [v for v in TRAIN_VARIANTS if not (cpu_quick and v == "bf16_autocast")]
            train = bench_train(size, args.ngf, steps, not args.no_lpips, args.device, tmp, variants)
            res["sizes"][str(size)] = {
                "train": train,
                "forward": bench_forward(size, args.ngf, reps, args.device, not cpu_quick),
                "data": {**bench_data(size), "vs_plain_step": None},
            }
            d = res["sizes"][str(size)]["data"]
            d["vs_plain_step"] = round(d["batch_ms"] / 1000.0 / train["plain"]["step_s"], 5)
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
