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

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import zarr

from facesynth.errors import NotAStoreError, StoreDamaged, StoreError, StoreLockedError
from facesynth.store.damage import array_dirs, chunk_file, chunk_frames_of
from facesynth.store.frame_store import FrameStore
from facesynth.store.lock import StoreLock
from facesynth.store.marker import MARKER, read_marker, write_marker
from facesynth.store.progress import Progress

KEY_RE = re.compile(r"^(?P<group>.+):(?P<start>\d+)-(?P<stop>\d+)$")


@dataclass
class StoreProblem:
    kind: str  # missing_chunk | corrupt_chunk | corrupt_array_metadata | corrupt_progress | corrupt_root | corrupt_marker
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


def _rerun_command(path: Path) -> str:
    """The graph run that rewrites what was cleared: the graph of the store's newest run log."""
    graph = "GRAPH"
    logs = sorted(Path(f"{path}.runs").glob("*.jsonl"), key=lambda f: f.stat().st_mtime, reverse=True)
    for log in logs:
        try:
            with open(log, encoding="utf-8") as fh:
                first = json.loads(fh.readline())
            if first.get("type") == "run_start" and first.get("file"):
                graph = str(first["file"])
                break
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            continue
    return f"facesynth graph run {graph} --set store.path={path}"


def _check_arrays(store: FrameStore, report: CheckReport, claims: dict[str, list[tuple[int, int]]]) -> None:
    path = store.path
    names, broken = array_dirs(path)
    for name in broken:
        report.problems.append(StoreProblem("corrupt_array_metadata", f"array or group '{name}': its zarr.json "
                                            "does not parse", array=name, file=str(path / name / "zarr.json")))
    ok_cache: dict[str, np.ndarray | None] = {}
    for name in names:
        try:
            arr = zarr.open_array(str(path / name), mode="r", zarr_format=3)
        except Exception as exc:  # noqa: BLE001 - metadata that parses as JSON but not as an array
            report.problems.append(StoreProblem("corrupt_array_metadata", f"array '{name}': metadata unusable "
                                                f"({type(exc).__name__}: {exc})", array=name))
            continue
        report.arrays_checked += 1
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        ok_name = f"{group}/ok"
        if ok_name not in ok_cache:
            ok_cache[ok_name] = _read_ok(path, ok_name)
        ok = ok_cache[ok_name] if name != ok_name else None
        for index in range(-(-int(arr.shape[0]) // int(arr.chunks[0])) if arr.shape[0] else 0):
            a, b = chunk_frames_of(arr, index)
            report.chunks_checked += 1
            f = chunk_file(path, name, arr, index)
            if f.exists():
                try:
                    arr[a:b]
                except Exception as exc:  # noqa: BLE001 - any codec error: this chunk is damaged
                    report.problems.append(StoreProblem(
                        "corrupt_chunk", f"array '{name}' chunk {index} (frames {a}-{b}) does not decode "
                        f"({type(exc).__name__}: {exc})", array=name, chunk=index, frames=[a, b], file=str(f)))
                continue
            if not store.checks_chunks:
                continue  # a store from before markers may leave all-fill chunks unwritten
            flagged = ok is not None and ok[a:b].any()
            claimed = any(s < b and a < e for s, e in claims.get(group, []))
            if flagged or claimed:
                why = f"'{ok_name}' flags its frames as written" if flagged else "the progress log says it was written"
                report.problems.append(StoreProblem(
                    "missing_chunk", f"array '{name}' chunk {index} (frames {a}-{b}) has no file though {why}",
                    array=name, chunk=index, frames=[a, b], file=str(f)))


def _read_ok(path: Path, ok_name: str) -> np.ndarray | None:
    """The ok flags of a group; frames whose ok chunk does not decode count as flagged."""
    try:
        arr = zarr.open_array(str(path / ok_name), mode="r", zarr_format=3)
    except Exception:  # noqa: BLE001 - no ok array (or a broken one, reported on its own)
        return None
    out = np.zeros(arr.shape[0], bool)
    cf = int(arr.chunks[0])
    for index in range(-(-int(arr.shape[0]) // cf)):
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


def check_store(path: str | os.PathLike, repair: bool = True) -> CheckReport:
    """Check (and by default prepare the repair of) the store at `path`; see the module docstring."""
    p = Path(path)
    report = CheckReport(path=str(p))
    if not p.is_dir():
        raise NotAStoreError(f"no store at {p} (not a directory)")
    try:
        if read_marker(p) is None:
            report.notes.append("no store marker: a store from before markers; missing all-fill chunks "
                                "cannot be told from deleted ones there")
    except StoreError as exc:
        report.problems.append(StoreProblem("corrupt_marker", str(exc), file=str(p / "facesynth_store.json")))
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
    for node in progress.nodes():
        scan = progress.scan(node)
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
    _check_arrays(store, report, claims)
    if report.problems and repair:
        try:
            _repair(p, report, progress, records)
        except StoreLockedError as exc:  # a run is writing: report, change nothing
            report.notes.append(f"not repaired: {exc}; nothing was changed, run the check again after it")
    return report


def _repair(p: Path, report: CheckReport, progress: Progress, records: dict[str, list[dict]]) -> None:
    drop = _keys_to_drop(records, _damaged_ranges(report.problems))
    damaged_progress = {Path(pr.file).stem for pr in report.problems if pr.kind == "corrupt_progress" and pr.file}
    with StoreLock(p, f"store-check-{os.getpid()}"):  # no run may write while we edit
        for pr in report.problems:
            if pr.kind == "corrupt_chunk" and pr.file:
                Path(pr.file).unlink(missing_ok=True)
                report.deleted_files.append(pr.file)
            elif pr.kind == "corrupt_marker":  # a new marker means a new store id: models of the old one are refused
                (p / MARKER).unlink(missing_ok=True)
                write_marker(p, new_store=False)
                report.notes.append("wrote a new store marker: the store has a new id, so a model trained on it "
                                    "before is refused as from another store (retrain, or use another out_dir)")
            elif pr.kind == "corrupt_array_metadata" and pr.array:
                shutil.rmtree(p / pr.array, ignore_errors=True)  # recreated by the stage that writes it
                report.deleted_files.append(str(p / pr.array))
        for node in sorted(set(drop) | damaged_progress):
            progress.rewrite(node, drop.get(node, set()))
            report.cleared[node] = sorted(drop.get(node, set()))
    report.repaired = True
    report.repair_command = _rerun_command(p)
