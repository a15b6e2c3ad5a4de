"""`facesynth store check`: verify every chunk of a store against its ok flags and progress.

A chunk is damaged when its file does not decode, or when it has no file although the
group's `ok` flags or a progress record say it was written (Zarr would read fill values).
A progress line that does not parse is damaged too. With `repair` (the default), the check
takes the store's lock, deletes the undecodable chunk files, drops the progress records of
every damaged chunk (in the node that wrote it and in every node downstream, whose results
came from it) and the damaged progress lines, so a rerun of the graph, without --restart,
recomputes exactly those chunks. The report says which command that is.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import zarr

from facesynth.errors import NotAStoreError, StoreDamaged, StoreError, StoreLockedError
from facesynth.input_files import KB, InputFileError, check_regular, parse_json
from facesynth.store.checked_zarr import open_array, open_root
from facesynth.store.damage import array_dirs, chunk_file, chunk_frames_of, n_chunks, present_chunks
from facesynth.store.frame_store import FrameStore
from facesynth.store.lock import LOCK, StoreLock, read_owner
from facesynth.store.paths import link_on_path
from facesynth.store.marker import MARKER, marker_problem, read_marker, root_attributes, write_marker
from facesynth.store.progress import Progress

KEY_RE = re.compile(r"^(?P<group>.+):(?P<start>\d+)-(?P<stop>\d+)$")
MAX_LOG_LINE = 256 * KB  # a run log's first line (run_start) as written: a few KB


@dataclass
class StoreProblem:
    # missing_chunk | corrupt_chunk | corrupt_array_metadata | corrupt_progress | corrupt_root | corrupt_marker
    # | corrupt_lock
    kind: str
    message: str
    array: str | None = None
    chunk: int | None = None
    frames: list[int] | None = None
    file: str | None = None
    lines: list[int] | None = None


@dataclass
class CheckReport:
    path: str
    problems: list[StoreProblem] = field(default_factory=list)
    chunks_checked: int = 0
    arrays_checked: int = 0
    repaired: bool = False
    cleared: dict[str, list[str]] = field(default_factory=dict)  # node -> progress keys dropped
    deleted_files: list[str] = field(default_factory=list)
    repair_command: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clean"] = self.clean
        return d


def _chunk_ranges(rec: dict) -> list[tuple[str, int, int]]:
    """(group, start, stop) of each ChunkRef a progress record says its unit wrote."""
    out = []
    for o in rec.get("outputs") or []:
        ch = o.get("chunk") if isinstance(o, dict) else None
        if isinstance(ch, dict) and {"group", "start", "stop"} <= set(ch):
            try:
                out.append((str(ch["group"]), int(ch["start"]), int(ch["stop"])))
            except (TypeError, ValueError):
                continue
    return out


def _first_record(log: Path) -> dict | None:
    """The first line of a run log as a JSON object (a regular file; at most one line read)."""
    try:
        check_regular(log, what="run log")
        with open(log, "rb") as fh:
            line = fh.readline(MAX_LOG_LINE + 1)
        first = parse_json(line, log, what="run log line") if len(line) <= MAX_LOG_LINE else None
    except (OSError, InputFileError):
        return None
    return first if isinstance(first, dict) else None


def _rerun_command(path: Path) -> str:
    """The graph run that rewrites what was cleared: the graph of the store's newest run log."""
    graph = "GRAPH"
    try:
        logs = sorted(Path(f"{path}.runs").glob("*.jsonl"), key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        logs = []
    for log in logs[:50]:
        first = _first_record(log)
        if first and first.get("type") == "run_start" and isinstance(first.get("file"), str):
            graph = shlex.quote(first["file"])
            break
    return f"facesynth graph run {graph} --set store.path={shlex.quote(str(path))}"


class _Ticker:
    """Says how far the check is, at most once a second (a store may hold thousands of chunks)."""

    def __init__(self, say: Callable[[str], None] | None, total: int, arrays: int):
        self.say, self.total, self.done, self.last = say, total, 0, time.monotonic()
        if say is not None:
            say(f"checking {total:,} chunks in {arrays} arrays (the chunks on disk, and those the ok flags "
                "or the progress log say were written)")

    def step(self, name: str) -> None:
        self.done += 1
        if self.say is not None and time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            self.say(f"checked {self.done:,} of {self.total:,} chunks (now '{name}')")


def _chunks_of(frames: np.ndarray, cf: int) -> set[int]:
    """Chunks (of `cf` frames) holding a frame marked in the per-frame boolean `frames`."""
    pad = np.zeros(-(-len(frames) // cf) * cf, bool)
    pad[:len(frames)] = frames
    return set(np.flatnonzero(pad.reshape(-1, cf).any(axis=1)).tolist())


def _claimed(ranges: list[tuple[int, int]], frames: int) -> np.ndarray:
    out = np.zeros(frames, bool)
    for s, e in ranges:
        out[max(0, s):max(0, min(e, frames))] = True
    return out


def _plan_arrays(store: FrameStore, report: CheckReport, claims: dict[str, list[tuple[int, int]]]) -> list:
    """(name, array, chunk indices to check, ok flags, claimed frames) of each array whose metadata
    passes its checks; the others are reported as not checked, with the reason."""
    path = store.path
    names, broken = array_dirs(path)
    for name, why in broken.items():
        report.problems.append(StoreProblem("corrupt_array_metadata", f"array or group '{name}' not checked: {why}",
                                            array=name, file=str(path / name / "zarr.json")))
    ok_cache: dict[str, np.ndarray | None] = {}
    plans = []
    for name in names:
        try:
            arr = open_array(path, name)
        except Exception as exc:  # noqa: BLE001 - refused (zarr_limits.py) or unusable metadata
            why = str(exc) if isinstance(exc, StoreDamaged) else f"metadata unusable ({type(exc).__name__}: {exc})"
            report.problems.append(StoreProblem("corrupt_array_metadata", f"array '{name}' not checked: {why}",
                                                array=name, file=str(path / name / "zarr.json")))
            continue
        report.arrays_checked += 1
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        ok_name = f"{group}/ok"
        if ok_name not in ok_cache:
            ok_cache[ok_name] = _read_ok(path, ok_name)
        ok = ok_cache[ok_name] if name != ok_name else None
        frames, cf = int(arr.shape[0]), int(arr.chunks[0])
        ok = ok[:frames] if ok is not None else np.zeros(0, bool)
        claimed = _claimed(claims.get(group, []), frames)
        todo = set(present_chunks(path, name, arr))
        if store.checks_chunks:  # a store from before markers may leave all-fill chunks unwritten
            todo |= _chunks_of(ok, cf) | _chunks_of(claimed, cf)
        plans.append((name, arr, sorted(i for i in todo if i < n_chunks(arr)), ok, claimed))
    return plans


def _check_arrays(store: FrameStore, report: CheckReport, claims: dict[str, list[tuple[int, int]]],
                  say: Callable[[str], None] | None = None) -> None:
    path = store.path
    plans = _plan_arrays(store, report, claims)
    ticker = _Ticker(say, sum(len(p[2]) for p in plans), len(plans))
    for name, arr, indices, ok, claimed in plans:
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        for index in indices:
            a, b = chunk_frames_of(arr, index)
            report.chunks_checked += 1
            ticker.step(name)
            f = chunk_file(path, name, arr, index)
            if os.path.lexists(f):
                try:
                    arr[a:b]
                except Exception as exc:  # noqa: BLE001 - any codec or file error: this chunk is damaged
                    report.problems.append(StoreProblem(
                        "corrupt_chunk", f"array '{name}' chunk {index} (frames {a}-{b}) does not decode "
                        f"({type(exc).__name__}: {exc})", array=name, chunk=index, frames=[a, b], file=str(f)))
                continue
            flagged = bool(ok[a:b].any())
            why = f"'{group}/ok' flags its frames as written" if flagged else "the progress log says it was written"
            report.problems.append(StoreProblem(
                "missing_chunk", f"array '{name}' chunk {index} (frames {a}-{b}) has no file though {why}",
                array=name, chunk=index, frames=[a, b], file=str(f)))


def _read_ok(path: Path, ok_name: str) -> np.ndarray | None:
    """The ok flags of a group, read from the chunks that have a file (an absent one is all false);
    frames whose ok chunk does not decode count as flagged."""
    try:
        arr = open_array(path, ok_name)
    except Exception:  # noqa: BLE001 - no ok array (or a broken one, reported on its own)
        return None
    out = np.zeros(arr.shape[0], bool)
    for index in present_chunks(path, ok_name, arr):
        a, b = chunk_frames_of(arr, index)
        try:
            out[a:b] = np.asarray(arr[a:b], bool)
        except Exception:  # noqa: BLE001
            out[a:b] = True
    return out


def _damaged_ranges(problems: list[StoreProblem]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for p in problems:
        if p.array and p.frames:
            group = p.array.rsplit("/", 1)[0] if "/" in p.array else p.array
            out.setdefault(group, []).append((p.frames[0], p.frames[1]))
        elif p.kind == "corrupt_array_metadata" and p.array:  # an array (its group) or a group: all frames
            for group in {p.array, p.array.rsplit("/", 1)[0]}:
                out.setdefault(group, []).append((0, 1 << 62))
    return out


def _keys_to_drop(records: dict[str, list[dict]], damaged: dict[str, list[tuple[int, int]]]) -> dict[str, set[str]]:
    """Progress keys whose units wrote a damaged range, or consumed one (downstream), to a fixpoint."""
    drop: dict[str, set[str]] = {n: set() for n in records}
    bad = {g: list(r) for g, r in damaged.items()}
    changed = True
    while changed:
        changed = False
        for node, recs in records.items():
            for rec in recs:
                key = str(rec["key"])
                if key in drop[node]:
                    continue
                m = KEY_RE.match(key)
                consumed = [(m["group"], int(m["start"]), int(m["stop"]))] if m else []
                wrote = _chunk_ranges(rec)
                if any(any(s < e2 and s2 < e for s2, e2 in bad.get(g, [])) for g, s, e in wrote + consumed):
                    drop[node].add(key)
                    for g, s, e in wrote:  # what it wrote came from damaged data: redo it too
                        bad.setdefault(g, []).append((s, e))
                    changed = True
    return {n: k for n, k in drop.items() if k}


def _check_marker(p: Path, report: CheckReport) -> None:
    try:
        if read_marker(p) is None:
            report.notes.append("no store marker: a store from before markers; missing all-fill chunks "
                                "cannot be told from deleted ones there")
            return
        problem = marker_problem(p)
    except StoreError as exc:
        problem = str(exc)
    if problem and (p / "zarr.json").exists():
        report.problems.append(StoreProblem("corrupt_marker", problem, file=str(p / MARKER)))


def _check_lock(p: Path, report: CheckReport) -> None:
    """A lock file no run could have written (not a regular file, too large) is reported: runs and
    repairs refuse to take it over, so it has to go by hand."""
    try:
        read_owner(p / LOCK)
    except StoreLockedError as exc:
        report.problems.append(StoreProblem("corrupt_lock", str(exc), file=str(p / LOCK)))


def _scan_progress(progress: Progress, report: CheckReport, records: dict[str, list[dict]],
                   claims: dict[str, list[tuple[int, int]]]) -> None:
    for node in progress.nodes():
        try:
            scan = progress.scan(node)
        except StoreDamaged as exc:  # not a regular file, or over its limit: not read at all
            report.problems.append(StoreProblem("corrupt_progress", f"progress of node '{node}' not checked: {exc}",
                                                file=str(progress._file(node))))
            continue
        records[node] = scan.records
        if scan.damaged_lines:
            what = "torn last line (a crash mid-write)" if scan.torn_tail and scan.damaged_lines == [
                max(scan.damaged_lines)] else f"{len(scan.damaged_lines)} line(s) that do not parse"
            report.problems.append(StoreProblem("corrupt_progress", f"progress of node '{node}': {what}, lines "
                                                f"{scan.damaged_lines[:10]}", file=str(progress._file(node)),
                                                lines=scan.damaged_lines))
        for rec in scan.records:
            for g, s, e in _chunk_ranges(rec):
                claims.setdefault(g, []).append((s, e))


def check_store(path: str | os.PathLike, repair: bool = True, say: Callable[[str], None] | None = None) -> CheckReport:
    """Check (and by default prepare the repair of) the store at `path`; see the module docstring.
    `say` gets a line on how far it is, at most once a second."""
    p = Path(path)
    report = CheckReport(path=str(p))
    if not p.is_dir():
        raise NotAStoreError(f"no store at {p} (not a directory)")
    _check_marker(p, report)
    _check_lock(p, report)
    try:
        store = FrameStore.open(p, mode="r")
    except StoreDamaged as exc:
        report.problems.append(StoreProblem("corrupt_root", str(exc), file=str(p / "zarr.json")))
        report.notes.append("the dataset attributes (capture, intrinsics, D0) live in the root zarr.json: "
                            f"restore it from a backup, or start over with `{_rerun_command(p)} --restart`")
        return report
    progress = Progress(p)
    records: dict[str, list[dict]] = {}
    claims: dict[str, list[tuple[int, int]]] = {}
    _scan_progress(progress, report, records, claims)
    _check_arrays(store, report, claims, say)
    if report.problems and repair:
        try:
            _repair(p, report, progress, records)
        except StoreLockedError as exc:  # a run is writing (or the lock is not one a run wrote): change nothing
            report.notes.append(f"not repaired: {exc}; nothing was changed, run the check again after it")
    return report


def _remove(p: Path, path: Path, report: CheckReport) -> None:
    """Remove a damaged entry inside the store: a link is removed, never what it points to, and
    nothing is removed through a link on its way (that would be outside the store)."""
    link = link_on_path(p, path.parent)
    if link is not None:
        report.notes.append(f"not removed: {path} is reached through the link {link}, which leads out of the "
                            "store; remove that link yourself")
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    report.deleted_files.append(str(path))


def _rewrite_marker(p: Path, report: CheckReport) -> None:
    """A new marker with the id the root's attributes hold (the store keeps its identity), else a new id."""
    (p / MARKER).unlink(missing_ok=True)
    root_id = (root_attributes(p) or {}).get("store_id")
    if isinstance(root_id, str) and root_id:
        write_marker(p, new_store=False, store_id=root_id)
        report.notes.append("wrote the store marker again with the store id its Zarr root holds: the store keeps "
                            "its identity")
        return
    marker = write_marker(p, new_store=False)
    open_root(p, "a").attrs["store_id"] = marker["store_id"]
    report.notes.append("wrote a new store marker: the store has a new id, so a model trained on it "
                        "before is refused as from another store (retrain, or use another out_dir)")


def _repair(p: Path, report: CheckReport, progress: Progress, records: dict[str, list[dict]]) -> None:
    drop = _keys_to_drop(records, _damaged_ranges(report.problems))
    damaged_progress = {Path(pr.file).stem for pr in report.problems if pr.kind == "corrupt_progress" and pr.file}
    with StoreLock(p, f"store-check-{os.getpid()}"):  # no run may write while we edit
        for pr in report.problems:
            if pr.kind == "corrupt_chunk" and pr.file:
                _remove(p, Path(pr.file), report)
            elif pr.kind == "corrupt_marker":
                _rewrite_marker(p, report)
            elif pr.kind == "corrupt_array_metadata" and pr.array:
                _remove(p, p / pr.array, report)  # recreated by the stage that writes it
            elif pr.kind == "corrupt_progress" and pr.file and pr.lines is None:  # refused unread: its work is redone
                _remove(p, Path(pr.file), report)
                damaged_progress.discard(Path(pr.file).stem)
        for node in sorted(set(drop) | damaged_progress):
            if node in records:
                progress.rewrite(node, drop.get(node, set()))
                report.cleared[node] = sorted(drop.get(node, set()))
    report.repaired = True
    report.repair_command = _rerun_command(p)
