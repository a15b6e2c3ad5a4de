"""`facesynth graph run|validate|show` and `facesynth nodes`."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

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
    summary = run_summary(result, args.file)
    if args.quiet or args.json:  # for scripts: the summary as one JSON line, the last one
        from facesynth.runtime.console import json_line

        print(json_line({"type": "summary", **summary}))
    else:
        from facesynth.runtime.console_text import summary_lines

        print("\n".join(summary_lines(summary)))
    return 0 if result.status == "ok" else 1


def _run(args: argparse.Namespace, loaded, backend: str):
    from facesynth.runtime.api import run_graph
    from facesynth.runtime.console import make_console

    if args.tui:
        from facesynth.tui.launch import run_with_dashboard

        return run_with_dashboard(loaded, backend=backend, address=args.address, restart=args.restart)
    console = make_console("quiet" if args.quiet else "json" if args.json else "auto")
    try:
        return run_graph(loaded, backend=backend, address=args.address, restart=args.restart, on_record=console)
    finally:
        if console is not None:
            console.close()


def run_summary(result, graph_file: str) -> dict:
    """How the run went, what it made and where, the export's held-out metrics beside the
    baseline, warnings counted and the commands to run next (plain data: JSON or lines)."""
    from facesynth.runtime.console_text import next_commands, warnings_text

    nodes = (result.stats or {}).get("nodes", {})
    summary: dict = {"status": result.status, "store": result.store, "run_log": str(result.run_log),
                     "elapsed_s": (result.stats or {}).get("elapsed_s")}
    finals = {k: v for k, v in result.sink.items() if all(isinstance(x, (dict, str, int, float)) for x in v)}
    if finals:
        summary["outputs"] = finals
    warnings = {n: s["warnings"] for n, s in nodes.items() if s.get("warnings")}
    if warnings:  # e.g. {"camera": {"capture.damaged": {"jpeg": 1}}}: a run that is ok, but not silently so
        summary["warnings"] = warnings
    summary["warning_count"], summary["warning_text"] = warnings_text(nodes)
    summary["retried"] = sum(int(s.get("restarts") or 0) for s in nodes.values())
    export = next((x["dir"] for v in finals.values() for x in v if isinstance(x, dict) and x.get("dir")), None)
    if export:
        summary["model"] = export_summary(export)
    prog = sys.argv[0] if Path(sys.argv[0]).name == "facesynth" else "facesynth"  # as the person typed it
    summary["next"] = next_commands(graph_file, export, result.store, prog)
    return summary


def export_summary(export_dir: str) -> dict:
    """What generator.json says of an export: size, ngf, steps, held-out eval and baseline."""
    from facesynth.errors import InputDataError
    from facesynth.input_files import MB, read_json

    d = Path(export_dir)
    info: dict = {"dir": str(export_dir),
                  "files": sorted(p.name for p in d.glob("generator*") if p.is_file()) if d.is_dir() else []}
    try:
        meta = read_json(d / "generator.json", max_bytes=16 * MB, what="generator.json")  # export.py's limit
    except (OSError, InputDataError) as exc:
        info["error"] = str(exc)
        return info
    if isinstance(meta, dict):
        info.update({k: meta[k] for k in ("size", "ngf", "epochs", "steps", "eval", "baseline") if k in meta})
    return info


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
            rng = [f"{m.__class__.__name__.lower()} {getattr(m, m.__class__.__name__.lower(), '')}"
                   for m in field.metadata if hasattr(m, m.__class__.__name__.lower())]
            extra = f" [{', '.join(rng)}]" if rng else ""
            print(f"    param {name} = {param_default(field)}{extra}" + (f"  {field.description}" if field.description else ""))
    return 0


def param_default(field) -> str:
    """A parameter's default as it would be written in a graph file (YAML flow style), or
    `(required)`: never a Python repr such as FrameCounts(train=1500, eval=250)."""
    import yaml
    from pydantic import BaseModel

    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000, allow_unicode=True)
    except yaml.YAMLError:  # not plain data: say what it is, not how Python prints it
        return f"({type(value).__name__})"
    return text.removesuffix("\n").removesuffix("\n...").strip()


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
    p.add_argument("--local", action="store_true", help="run in this process without Ray: for debugging, and "
                   "the fastest way to run a live graph (no process hop per frame)")
    p.add_argument("--restart", action="store_true", help="start over: delete the store's frames and progress")
    p.add_argument("--tui", action="store_true", help="show the live terminal dashboard while running")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true",
                     help="nothing while it runs; at the end the summary as one JSON line (for scripts)")
    out.add_argument("--json", action="store_true",
                     help="JSON lines on stdout: events, progress, then the summary (for scripts)")
    p.set_defaults(func=cmd_run)
    n = sub.add_parser("nodes", help="list node kinds, their ports and params")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_nodes)
