"""`facesynth view [RUNLOG_OR_DIR] [--print]`: open the browser viewer of a running live graph.

A live.viewer node writes a `live.listening` event with its URL into the run log; this command
finds the newest run log that is still running (no run_end) with such an event, checks the page
answers, prints the URL and opens it in the default browser (unless --print).
"""
from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from facesynth.errors import UsageError

DEFAULT_RUNS = "data_store/runs"


def viewer_url(run_log: Path) -> tuple[str | None, bool]:
    """(URL of the run's viewer or None, whether the run has ended)."""
    url, ended = None, False
    for line in run_log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if rec.get("type") == "run_end":
            ended = True
        elif rec.get("type") == "event" and rec.get("name") == "live.listening" and str(
                rec.get("protocol", "")).startswith("viewer") and rec.get("url"):
            url = str(rec["url"])
    return url, ended


def candidate_logs(target: str | None) -> list[Path]:
    """Run logs to look at, newest first: a .jsonl, a folder of them, or a store's <store>.runs/."""
    paths = [Path(target)] if target else [Path(DEFAULT_RUNS)]
    logs: list[Path] = []
    for p in paths:
        if p.is_file():
            logs.append(p)
        elif p.is_dir():
            runs = p if p.name.endswith(".runs") or not Path(str(p).rstrip("/") + ".runs").is_dir() \
                else Path(str(p).rstrip("/") + ".runs")
            logs.extend(runs.glob("*.jsonl"))
        elif Path(str(p).rstrip("/") + ".runs").is_dir():
            logs.extend(Path(str(p).rstrip("/") + ".runs").glob("*.jsonl"))
    return sorted(logs, key=lambda f: f.stat().st_mtime, reverse=True)


def answers(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status.json", timeout=timeout_s) as r:
            return r.status == 200
    except OSError:
        return False


def cmd_view(args: argparse.Namespace) -> int:
    logs = candidate_logs(args.target)
    if not logs:
        raise UsageError(f"no run logs in {args.target or DEFAULT_RUNS}; start a live graph with a live.viewer "
                         "node first, e.g. 'facesynth graph run graphs/live_demo.yaml'")
    for log in logs[:20]:
        url, ended = viewer_url(log)
        if url and not ended and answers(url):
            print(url)
            if not args.print_only:
                import webbrowser

                webbrowser.open(url)
            return 0
    raise UsageError("no running graph with a live.viewer node found (looked at the newest run logs in "
                     f"{args.target or DEFAULT_RUNS}); start one, e.g. 'facesynth graph run graphs/live_demo.yaml', "
                     "or pass its run log / store")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="open the browser viewer of a running live graph",
                       description="Find the newest running graph with a live.viewer node (from its run log), "
                                   "print the page's URL and open it in the default browser.")
    p.add_argument("target", nargs="?", metavar="RUNLOG_OR_DIR",
                   help=f"a run log .jsonl, a folder of them, or a store (its <store>.runs/); default {DEFAULT_RUNS}")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the URL")
    p.set_defaults(func=cmd_view)
