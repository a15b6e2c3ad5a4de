"""`facesynth model eval` and `facesynth model export`."""
from __future__ import annotations

import argparse
import json


def cmd_eval(args: argparse.Namespace) -> int:
    from facesynth.model.evaluate_exported import evaluate_exported

    res = evaluate_exported(args.model, args.store, lpips=not args.no_lpips, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"model {res['model']} on {res['store']} ({res['frames']} eval frames, size {res['size']})")
    print(f"  {'metric':16s} {'model':>10s} {'mean image':>12s}")
    for key in ("depth_mae_mm", "psnr", "ssim", "lpips"):
        if key in res["model_metrics"]:
            print(f"  {key:16s} {res['model_metrics'][key]:10.4f} {res['baseline'][key]:12.4f}")
    print(f"  generator ms/frame: {res['generator_ms']:.2f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from facesynth.model.export import export_generator, generator_from_checkpoint

    gen, cfg, meta = generator_from_checkpoint(args.checkpoint)
    path = export_generator(gen, args.out, meta, onnx=not args.no_onnx)
    print(json.dumps({"torchscript": str(path), "out": str(args.out), "size": cfg["size"],
                      "epochs": meta.get("epochs"), "onnx": not args.no_onnx}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("model", help="evaluate or export a trained generator")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    e = msub.add_parser("eval", help="metrics of an exported model on a store's eval split")
    e.add_argument("--model", required=True, help="generator.ts.pt or the export directory")
    e.add_argument("--store", required=True, help="frame store with crop/fill pairs")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--no-lpips", action="store_true")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)
    x = msub.add_parser("export", help="TorchScript + ONNX + metadata from a training checkpoint")
    x.add_argument("--checkpoint", required=True, help="a checkpoint file or checkpoints directory")
    x.add_argument("--out", required=True, help="directory to write generator.ts.pt/.onnx/.json")
    x.add_argument("--no-onnx", action="store_true")
    x.set_defaults(func=cmd_export)
