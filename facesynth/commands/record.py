"""`facesynth record OUT.mkv`: write a live Azure Kinect session to MKV for later replay.

The file is what k4arecorder writes (MJPEG colour, 16-bit depth and IR, calibration attached),
so `capture.recording` and the Kinect SDK both read it. Needs the `[kinect]` extra and libk4a;
without them the command fails with a MissingDependencyError that says what to install.
"""
from __future__ import annotations

import argparse
import sys

from facesynth.errors import UsageError
from facesynth.input_files import check_output_path
from facesynth.terminal_text import echo


def cmd_record(args: argparse.Namespace) -> int:
    from facesynth.capture.kinect.live import record

    if args.seconds is None and args.frames is None and not sys.stdin.isatty():
        raise UsageError("give --seconds or --frames when not running in a terminal (Ctrl-C stops otherwise)")
    check_output_path(args.out, "the recording", example="session.mkv")

    def progress(n: int, elapsed: float) -> None:
        if n % max(1, args.fps) == 0:
            print(f"\r{n} captures, {elapsed:6.1f} s", end="", file=sys.stderr, flush=True)

    n = record(args.out, device=args.device, color_resolution=args.color_resolution,
               depth_mode=args.depth_mode, fps=args.fps, seconds=args.seconds, frames=args.frames,
               on_frame=progress)
    echo(f"\nwrote {n} captures to {args.out}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("record", help="record a live Azure Kinect session to MKV (needs the [kinect] extra)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output .mkv path")
    p.add_argument("--device", type=int, default=0, help="device index (default 0)")
    p.add_argument("--color-resolution", default="720P",
                   choices=["720P", "1080P", "1440P", "1536P", "2160P", "3072P"])
    p.add_argument("--depth-mode", default="NFOV_UNBINNED",
                   choices=["NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_2X2BINNED", "WFOV_UNBINNED"])
    p.add_argument("--fps", type=int, default=30, choices=[5, 15, 30])
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--frames", type=int, default=None, help="stop after this many captures")
    p.set_defaults(func=cmd_record)
