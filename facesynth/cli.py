"""The `facesynth` command. Subcommands live in facesynth/commands/ and are discovered.

Exit codes: 0 ok, 1 a run failed, 2 an invalid graph file or bad usage (an OSError that reaches
here is a path the user gave: named, in words, exit 2). Every message is escaped for the terminal.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from facesynth.errors import FacesynthError
from facesynth.input_files import os_error_text
from facesynth.terminal_text import terminal_safe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesynth",
        description="Learn a person's 3D face: capture, landmark, crop, fill depth, train, run live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import facesynth.commands as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"facesynth.commands.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors already
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FacesynthError as exc:
        print(f"error: {terminal_safe(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the user gave: too long, a directory, no permission, ...
        print(f"error: {terminal_safe(os_error_text(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run `facesynth graph run` again to continue where it stopped", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
