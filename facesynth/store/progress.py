"""Per-node, per-chunk progress inside the store, so an interrupted run continues.

Each node has an append-only JSON-lines file `<store>/_progress/<node_id>.jsonl`; one line
per finished unit of work: {"key": ..., "outputs": [{"port", "item"}...]}. Only the runtime's
supervisor writes it (one writer per file). A crash mid-write leaves a torn last line: loading
ignores it, and the next append first ends it with a newline, so the fragment never swallows
a new record. A line that does not parse (damage) only loses its record: that unit is redone.
`facesynth store check` reports such lines and rewrites the file without them (`rewrite`).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from facesynth.errors import StoreDamaged
from facesynth.input_files import MB, InputFileError, read_bytes
from facesynth.store.paths import link_on_path
from facesynth.terminal_text import echo

MAX_PROGRESS_BYTES = 64 * MB  # ~120 bytes a finished chunk: 500,000 chunks


@dataclass
class ProgressScan:
    """What one progress file holds: good records, and the lines that are not records."""

    records: list[dict] = field(default_factory=list)
    damaged_lines: list[int] = field(default_factory=list)  # 1-based; a torn last line included
    torn_tail: bool = False  # the file does not end with a newline (a crash mid-append)


def _parse(line: bytes) -> dict | None:
    try:
        rec = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or "key" not in rec or not isinstance(rec.get("outputs", []), list):
        return None
    return rec


class Progress:
    """Finished work units per node, read at start and appended as the run goes."""

    def __init__(self, store_path: str | os.PathLike):
        self.dir = Path(store_path) / "_progress"

    def _file(self, node_id: str) -> Path:
        return self.dir / f"{node_id}.jsonl"

    def scan(self, node_id: str) -> ProgressScan:
        f = self._file(node_id)
        out = ProgressScan()
        link = link_on_path(self.dir.parent, f)
        if link is not None:  # runs append to this file: never through a link, to somewhere else
            raise StoreDamaged(f"{f}: the progress file is reached through the link {link} (facesynth writes no "
                               f"links in a store); refused; `facesynth store check {self.dir.parent}` reports it",
                               array=f"_progress/{f.name}")
        try:  # a link to /dev/zero, a FIFO or a 20 GB file is refused by its metadata, never read
            data = read_bytes(f, MAX_PROGRESS_BYTES, "progress file")
        except FileNotFoundError:
            return out
        except InputFileError as exc:
            raise StoreDamaged(f"{exc}; `facesynth store check {self.dir.parent}` reports it; move it away "
                               "(its node's work is then redone)", array=f"_progress/{f.name}") from None
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the file ends with a newline: no fragment after it
        elif lines:
            out.torn_tail = True
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            rec = _parse(line)
            if rec is None:
                out.damaged_lines.append(i)
            else:
                out.records.append(rec)
        return out

    def load(self, node_id: str) -> dict[str, list[dict]]:
        """key -> recorded outputs of every finished unit of `node_id` (lines that do not parse are
        skipped: their units are redone; damage other than a torn last line is warned about)."""
        scan = self.scan(node_id)
        damaged = [i for i in scan.damaged_lines if not (scan.torn_tail and i == scan.damaged_lines[-1])]
        if damaged:
            echo(f"warning: progress file {self._file(node_id)} has {len(damaged)} damaged line(s) {damaged[:5]}; "
                 f"their work is redone (`facesynth store check {self.dir.parent}` reports the store's damage)",
                 file=sys.stderr)
        return {str(rec["key"]): list(rec.get("outputs", [])) for rec in scan.records}

    def mark(self, node_id: str, key: str, outputs: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "outputs": outputs}, separators=(",", ":")).encode() + b"\n"
        with open(self._file(node_id), "a+b") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end > 0:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line  # end a torn fragment first, so it cannot join this record
            fh.write(line)  # a torn line after a crash is skipped by load()

    def nodes(self) -> list[str]:
        return sorted(f.stem for f in self.dir.glob("*.jsonl")) if self.dir.exists() else []

    def rewrite(self, node_id: str, drop_keys: set[str] | frozenset = frozenset()) -> int:
        """Rewrite a node's file with only its good records, less `drop_keys` (atomically);
        return how many records were dropped. Not while a run writes it (hold the store lock)."""
        f = self._file(node_id)
        scan = self.scan(node_id)
        keep = [r for r in scan.records if str(r["key"]) not in drop_keys]
        tmp = f.with_suffix(".jsonl.tmp")
        tmp.unlink(missing_ok=True)  # whatever is there (a FIFO would block an open for writing)
        with open(tmp, "xb") as fh:
            fh.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in keep))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, f)
        return len(scan.records) - len(keep)

    def summary(self) -> dict[str, int]:
        """node_id -> number of finished units."""
        return {n: len(self.load(n)) for n in self.nodes()}

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
