"""`facesynth dashboard [RUNLOG_OR_STORE] [--address ADDR] [--replay]`: the terminal dashboard."""
from __future__ import annotations

import argparse

from facesynth.errors import UsageError


def build_source(args: argparse.Namespace):
    """The record source the command line asks for (a usage error when it asks for none or two)."""
    from facesynth.tui.sources import ActorSource, ReplaySource, TailSource, newest_run_log

    if args.address:
        if args.target or args.replay:
            raise UsageError("give either RUNLOG_OR_STORE or --address, not both (--replay needs a run log)")
        source = ActorSource.connect(args.address)
    elif not args.target:
        raise UsageError("give a run log (.jsonl), a store path (its newest run log in <store>.runs/ is shown), "
                         "or --address HOST:PORT of a Ray cluster running a graph")
    else:
        path = newest_run_log(args.target)
        source = ReplaySource(path, speed=args.speed) if args.replay else TailSource(path)
    return source


def cmd_dashboard(args: argparse.Namespace) -> int:
    from facesynth.tui.app import make_app

    app = make_app(build_source(args), poll_s=args.poll)
    app.run()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="terminal dashboard of a running or finished graph run",
                       description="Follow a run log as it grows (default), replay a finished one (--replay), "
                                   "or watch the metrics actor of a Ray cluster (--address). "
                                   "Keys: q quit, arrows + enter open a node, esc back, p pause.")
    p.add_argument("target", nargs="?", metavar="RUNLOG_OR_STORE",
                   help="a run log .jsonl, or a store path: its newest log in <store>.runs/ is used")
    p.add_argument("--address", help="Ray cluster address (e.g. 127.0.0.1:6379) whose metrics actor to watch")
    p.add_argument("--replay", action="store_true", help="play a finished run log back at its recorded pace")
    p.add_argument("--speed", type=float, default=10.0,
                   help="replay speed: times the recorded pace, 0 = show the end at once (default 10)")
    p.add_argument("--poll", type=float, default=0.25, help="seconds between updates (default 0.25)")
    p.set_defaults(func=cmd_dashboard)
