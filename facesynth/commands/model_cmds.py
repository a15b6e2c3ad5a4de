"""`facesynth model eval` and `facesynth model export`."""
from __future__ import annotations

import argparse
import json
import sys

from facesynth.errors import UsageError
from facesynth.input_files import check_output_path
from facesynth.model.arch import DEFAULT_MEMORY_BUDGET
from facesynth.terminal_text import echo


def cmd_eval(args: argparse.Namespace) -> int:
    from facesynth.model.evaluate_exported import depth_source_words, evaluate_exported

    fmt = "torchscript" if args.trust_torchscript else "onnx" if args.onnx else "weights"
    if not args.memory_budget_gb > 0:
        raise UsageError(f"--memory-budget-gb must be above 0 (got {args.memory_budget_gb:g})")
    res = evaluate_exported(args.model, args.store, lpips=not args.no_lpips, batch_size=args.batch_size,
                            format=fmt, memory_budget=int(args.memory_budget_gb * (1 << 30)))
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    echo(f"model {res['model']} on {res['store']} ({res['frames']} eval frames, size {res['size']})")
    print(f"  {'metric':22s} {'model':>10s} {'mean image':>12s}")
    depth_note = f"  ({depth_source_words(res['depth_source'])}"
    if res["trained_depth_source"] != res["depth_source"]:
        depth_note += f"; trained on: {depth_source_words(res['trained_depth_source'])}"
    for key, value in res["model_metrics"].items():  # whatever metrics.evaluate measures
        base = res["baseline"].get(key)
        if isinstance(value, (int, float)) and isinstance(base, (int, float)):
            print(f"  {key:22s} {value:10.4f} {base:12.4f}" + (depth_note + ")" if key.startswith("depth_") else ""))
    print(f"  generator ms/frame: {res['generator_ms']:.2f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from facesynth.model.export import export_generator, generator_from_checkpoint

    check_output_path(args.out, "--out", directory=True)
    gen, cfg, meta = generator_from_checkpoint(args.checkpoint)
    for note in meta.pop("damaged_checkpoints", []):
        echo(f"warning: skipped a damaged checkpoint: {note}", file=sys.stderr)
    path = export_generator(gen, args.out, meta, onnx=not args.no_onnx)
    print(json.dumps({"weights": str(path), "checkpoint": meta["checkpoint"], "out": str(args.out), "size": cfg["size"],
                      "epochs": meta.get("epochs"), "onnx": not args.no_onnx}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("model", help="evaluate or export a trained generator")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    e = msub.add_parser("eval", help="metrics of an exported model on a store's eval split")
    e.add_argument("--model", required=True, help="the export directory (or its generator.pt)")
    e.add_argument("--store", required=True, help="frame store with crop/fill pairs")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--no-lpips", action="store_true")
    e.add_argument("--json", action="store_true")
    e.add_argument("--memory-budget-gb", type=float, default=DEFAULT_MEMORY_BUDGET / (1 << 30), metavar="GB",
                   help="refuse a model whose generator.json describes a net needing more memory than this to "
                        "load and run (estimated from its arch before anything is built; default %(default)g)")
    how = e.add_mutually_exclusive_group()
    how.add_argument("--onnx", action="store_true", help="run generator.onnx with ONNX Runtime instead of the weights")
    how.add_argument("--trust-torchscript", action="store_true",
                   help="load generator.ts.pt with torch.jit.load, which runs code stored in the file: "
                        "only for files you trust (the default loads weights only)")
    e.set_defaults(func=cmd_eval)
    x = msub.add_parser("export", help="weights + ONNX + TorchScript + metadata from a training checkpoint")
    x.add_argument("--checkpoint", required=True, help="a checkpoint file or checkpoints directory")
    x.add_argument("--out", required=True, help="directory to write generator.pt/.json/.onnx/.ts.pt")
    x.add_argument("--no-onnx", action="store_true")
    x.set_defaults(func=cmd_export)
