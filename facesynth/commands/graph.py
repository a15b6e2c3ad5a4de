"""`facesynth graph run|validate|show` and `facesynth nodes`."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from facesynth.graph.checks import load_graph
from facesynth.terminal_text import echo


def _add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="graph YAML file, e.g. graphs/capture_to_model.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value, e.g. --set nodes.train.params.epochs=2 (repeatable)")


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = load_graph(args.file, args.overrides)
    echo(f"{args.file}: ok ({len(loaded.spec.nodes)} nodes)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from facesynth.graph.render import as_mermaid, as_table

    loaded = load_graph(args.file, args.overrides)
    echo(as_mermaid(loaded.spec) if args.format == "mermaid" else as_table(loaded.spec))
    return 0


def _sigterm_as_interrupt() -> None:
    """`kill PID` stops a run like Ctrl-C does: progress so far is kept for the next run.
    Set before Ray starts; RayBackend puts it back after ray.init, which replaces it."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def cmd_run(args: argparse.Namespace) -> int:
    if args.store:
        args.overrides.append(f"store.path={args.store}")
    loaded = load_graph(args.file, args.overrides)  # invalid graphs fail before Ray starts
    _sigterm_as_interrupt()
    backend = "local" if args.local else "ray"
    try:
        result = _run(args, loaded, backend)
    except KeyboardInterrupt:
        if loaded.spec.store is None:  # a live graph: stopping it is how it ends
            print("stopped", file=sys.stderr)
            return 0
        raise
    summary = {"status": result.status, "store": result.store, "run_log": str(result.run_log)}
    finals = {k: v for k, v in result.sink.items() if all(isinstance(x, (dict, str, int, float)) for x in v)}
    if finals:
        summary["outputs"] = finals
    warnings = {n: s["warnings"] for n, s in (result.stats or {}).get("nodes", {}).items() if s.get("warnings")}
    if warnings:  # e.g. {"camera": {"capture.damaged": {"jpeg": 1}}}: a run that is ok, but not silently so
        summary["warnings"] = warnings
    print(json.dumps(summary, default=str))
    return 0 if result.status == "ok" else 1


def _run(args: argparse.Namespace, loaded, backend: str):
    from facesynth.runtime.api import run_graph
    from facesynth.runtime.console import ConsoleProgress

    if args.tui:
        from facesynth.tui.launch import run_with_dashboard

        return run_with_dashboard(loaded, backend=backend, address=args.address, restart=args.restart)
    progress = None if args.quiet else ConsoleProgress()
    return run_graph(loaded, backend=backend, address=args.address, restart=args.restart, on_record=progress)


def cmd_nodes(args: argparse.Namespace) -> int:
    from facesynth.nodes import registry

    kinds = registry.kinds()
    if args.json:
        print(json.dumps({k: {"summary": c.summary, "inputs": c.inputs, "outputs": c.outputs,
                              "params": c.Params.model_json_schema().get("properties", {})}
                          for k, c in kinds.items()}, indent=2, default=str))
        return 0
    for kind, cls in kinds.items():
        print(f"{kind}: {cls.summary}")
        for port, doc in cls.inputs.items():
            print(f"    in  {port}: {doc}")
        for port, doc in cls.outputs.items():
            print(f"    out {port}: {doc}")
        for name, field in cls.Params.model_fields.items():
            default = field.get_default(call_default_factory=True)
            rng = [f"{m.__class__.__name__.lower()} {getattr(m, m.__class__.__name__.lower(), '')}"
                   for m in field.metadata if hasattr(m, m.__class__.__name__.lower())]
            extra = f" [{', '.join(rng)}]" if rng else ""
            print(f"    param {name} = {default!r}{extra}" + (f"  {field.description}" if field.description else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("graph", help="validate, show or run a graph file")
    gsub = g.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    p = gsub.add_parser("validate", help="check a graph file (never starts Ray)")
    _add_graph_args(p)
    p.set_defaults(func=cmd_validate)
    p = gsub.add_parser("show", help="print the graph as a table or mermaid")
    _add_graph_args(p)
    p.add_argument("--format", choices=["table", "mermaid"], default="table")
    p.set_defaults(func=cmd_show)
    p = gsub.add_parser("run", help="run a graph (embedded Ray by default)")
    _add_graph_args(p)
    p.add_argument("--store", help="store path (same as --set store.path=PATH)")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 127.0.0.1:6379) instead of embedded Ray")
    p.add_argument("--local", action="store_true", help="run in this process without Ray (debugging)")
    p.add_argument("--restart", action="store_true", help="start over: delete the store's frames and progress")
    p.add_argument("--tui", action="store_true", help="show the live terminal dashboard while running")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_run)
    n = sub.add_parser("nodes", help="list node kinds, their ports and params")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_nodes)
