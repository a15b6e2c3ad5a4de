"""Live generator time per frame for each way of loading an export: weights (the code-free
default), ONNX Runtime, TorchScript (trusted files only; the format live.generator used before).

The same export (random weights: the time does not depend on their values) is loaded three
ways through live.generator's own LiveGenerator and called on the same landmark sets, in
turn (round-robin, so a busy machine slows every format alike); the baseline is TorchScript, measured in the same run. Prints JSON (medians, ratios to TorchScript).

  .venv/bin/python benchmarks/model_formats.py --quick          # 64 px, ngf 8
  .venv/bin/python benchmarks/model_formats.py --size 256 --ngf 64 --threads 2
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def time_formats(model: Path, formats: tuple[str, ...], threads: int, calls: int, sets: np.ndarray) -> dict:
    """Calls go round-robin over the formats, so a busy machine slows them all alike."""
    from facesynth.live.output_nodes import LiveGenerator

    gens, load_ms = {}, {}
    for fmt in formats:
        t0 = time.perf_counter()
        gens[fmt] = LiveGenerator(str(model), "cpu", threads, False, fmt)
        load_ms[fmt] = (time.perf_counter() - t0) * 1000.0
        gens[fmt].warm_up(5)
    ms: dict[str, list[float]] = {fmt: [] for fmt in formats}
    for i in range(calls):
        for fmt in formats:
            ms[fmt].append(gens[fmt].infer(sets[i % len(sets)])[1])
    return {fmt: {"load_ms": round(load_ms[fmt], 1), "generator_ms_p50": round(float(np.median(ms[fmt])), 3),
                  "generator_ms_p90": round(float(np.percentile(ms[fmt], 90)), 3)} for fmt in formats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads / ONNX Runtime intra-op threads")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="64 px, ngf 8")
    a = ap.parse_args()
    if a.quick:
        a.size, a.ngf = 64, 8
    import torch

    from facesynth.model.export import export_generator
    from facesynth.model.generator import UNetGenerator

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    sets = rng.uniform(0.1 * a.size, 0.9 * a.size, (16, 70, 2)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "export"
        export_generator(UNetGenerator(a.size, a.ngf).eval(), model,
                         {"d0_mm": 600.0, "face_depth_mm": 80.0, "near_mm": 20.0}, onnx=True)
        res = time_formats(model, ("torchscript", "weights", "onnx"), a.threads, a.calls, sets)
    base = res["torchscript"]["generator_ms_p50"]
    for fmt in res:
        res[fmt]["ratio_to_torchscript"] = round(res[fmt]["generator_ms_p50"] / base, 3)
    out = {"benchmark": "model_formats", "size": a.size, "ngf": a.ngf, "threads": a.threads,
           "calls": a.calls, "formats": res}
    print(json.dumps(out, indent=1))
    for fmt, r in res.items():
        print(f"{fmt:12s} {r['generator_ms_p50']:9.2f} ms p50  x{r['ratio_to_torchscript']:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
