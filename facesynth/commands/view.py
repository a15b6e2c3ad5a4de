"""`facesynth view [RUNLOG_OR_DIR] [--print]`: open the browser viewer of a running live graph.

A live.viewer node writes a `live.listening` event with its URL into the run log; this command
finds the newest run log that is still running (no run_end) with such an event, makes sure the
URL is a facesynth viewer on this machine, prints it and opens it in the default browser (unless
--print).

Run logs travel with stores, so the URL in one is text someone else may have written. It is
opened only when it is a plain http URL of a loopback address (127.0.0.1, ::1, localhost) with
a port, at the viewer's root (no path, query, fragment or user name), and that address answers
`/status.json` (no redirect followed, within a short timeout) with the status a facesynth viewer
serves; anything else is shown, escaped, and refused. Logs are read from their first MiB (the
event) and last 64 KiB (the run's end), so a huge or endless file costs nothing.
"""
from __future__ import annotations

import argparse
import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from facesynth.errors import UsageError
from facesynth.input_files import InputFileError, check_regular
from facesynth.terminal_text import echo, shown

DEFAULT_RUNS = "data_store/runs"
MAX_LOGS = 20
HEAD_BYTES, TAIL_BYTES = 1 << 20, 64 << 10
PROBE_TIMEOUT_S = 1.0   # a viewer on this machine answers in milliseconds
PROBE_BUDGET_S = 2.0    # all candidates together: logs naming ports that never answer cost little
MAX_STATUS_BYTES = 64 << 10
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")  # what urlsplit gives for [::1]


def _records(data: bytes):
    """The JSON objects among `data`'s lines (a hostile line is skipped, never raised)."""
    for line in data.splitlines():
        if not line.strip().startswith(b"{"):
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line being written right now, or not facesynth's
        if isinstance(rec, dict):
            yield rec


def viewer_url(run_log: Path) -> tuple[str | None, bool]:
    """(URL of the run's viewer or None, whether the run has ended): from the log's first MiB and
    its last 64 KiB only."""
    try:
        st = check_regular(run_log, what="run log")
        with open(run_log, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            fh.seek(max(len(head), st.st_size - TAIL_BYTES))
            tail = fh.read(TAIL_BYTES)
    except (OSError, InputFileError):
        return None, False
    url = None
    for rec in _records(head):
        if rec.get("type") == "event" and rec.get("name") == "live.listening" and str(
                rec.get("protocol", "")).startswith("viewer") and rec.get("url"):
            url = str(rec["url"])
    ended = any(rec.get("type") == "run_end" for rec in _records(head + tail))
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

    def mtime(f: Path) -> float:
        try:
            return f.stat().st_mtime
        except OSError:  # gone, or a dangling link
            return 0.0
    return sorted(logs, key=mtime, reverse=True)


def url_problem(url: str) -> str | None:
    """Why `url` is not a viewer address this command may open, or None."""
    if len(url) > 200 or any(c.isspace() or not c.isprintable() for c in url):
        return "not a plain URL (too long, spaces or control characters)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"not a URL ({e})"
    if parts.scheme != "http":
        return "not an http:// URL"
    if "@" in parts.netloc:
        return "it has a user name"
    if parts.hostname not in LOOPBACK_HOSTS:
        return "not a loopback address (127.0.0.1, ::1 or localhost)"
    if port is None or not 0 < port < 65536:
        return "no port"
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        return "not the viewer's root (a path, query or fragment)"
    return None


def status_problem(url: str, timeout_s: float) -> str | None:
    """Why the address does not answer as a facesynth viewer, or None. One GET /status.json, no
    redirect followed, at most MAX_STATUS_BYTES read."""
    parts = urlsplit(url)
    host_header = f"[{parts.hostname}]:{parts.port}" if ":" in (parts.hostname or "") else parts.netloc
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", "/status.json", headers={"Host": host_header})
        resp = conn.getresponse()
        body = resp.read(MAX_STATUS_BYTES + 1)
        server = resp.getheader("Server", "")
    except (OSError, http.client.HTTPException) as e:
        return f"does not answer ({type(e).__name__})"
    finally:
        conn.close()
    if resp.status != 200 or len(body) > MAX_STATUS_BYTES:
        return f"answers HTTP {resp.status}, not a viewer status"
    try:
        status = json.loads(body)
    except (ValueError, RecursionError):
        return "its status.json is not JSON"
    ok = (isinstance(status, dict) and server.startswith("facesynth-viewer")
          and all(isinstance(status.get(k), int) for k in ("clients", "connections", "replaced_frames", "sent"))
          and isinstance(status.get("rejected"), dict) and isinstance(status.get("url"), str)
          and urlsplit(status["url"]).port == parts.port)
    return None if ok else "what answers there is not a facesynth viewer"


def find_viewer(logs: list[Path], timeout_s: float = PROBE_TIMEOUT_S,
                budget_s: float = PROBE_BUDGET_S) -> tuple[str | None, list[str]]:
    """(the newest running viewer's URL or None, why each other candidate was refused)."""
    refused: list[str] = []
    tried: set[str] = set()
    deadline = time.monotonic() + budget_s
    for log in logs[:MAX_LOGS]:
        url, ended = viewer_url(log)
        if not url or ended or url in tried:
            continue
        tried.add(url)
        why = url_problem(url)
        if why is None:
            left = deadline - time.monotonic()
            if left <= 0:
                refused.append(f"{shown(url, 120)} (from {shown(log.name, 80)}): not tried, out of time")
                continue
            why = status_problem(url, min(timeout_s, left))
        if why is None:
            return url, refused
        refused.append(f"{shown(url, 120)} (from {shown(log.name, 80)}): {why}")
    return None, refused


def cmd_view(args: argparse.Namespace) -> int:
    logs = candidate_logs(args.target)
    if not logs:
        raise UsageError(f"no run logs in {args.target or DEFAULT_RUNS}; start a live graph with a live.viewer "
                         "node first, e.g. 'facesynth graph run graphs/live_demo.yaml'")
    url, refused = find_viewer(logs)
    if url is not None:
        echo(url)
        if not args.print_only:
            import webbrowser

            webbrowser.open(url)
        return 0
    why = "".join(f"\n  refused {r}" for r in refused)
    raise UsageError("no running graph with a live.viewer node found (looked at the newest run logs in "
                     f"{args.target or DEFAULT_RUNS}); start one, e.g. 'facesynth graph run graphs/live_demo.yaml', "
                     f"or pass its run log / store{why}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="open the browser viewer of a running live graph",
                       description="Find the newest running graph with a live.viewer node (from its run log), "
                                   "print the page's URL and open it in the default browser.")
    p.add_argument("target", nargs="?", metavar="RUNLOG_OR_DIR",
                   help=f"a run log .jsonl, a folder of them, or a store (its <store>.runs/); default {DEFAULT_RUNS}")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the URL")
    p.set_defaults(func=cmd_view)

