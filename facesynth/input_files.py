"""One rule for every file a user may have received (a store's metadata, an export, a run log, an image):
a regular file, within a size limit, checked before a byte of it is parsed, decompressed or allocated for.

A link to /dev/zero, a FIFO, a device or a 20 GB sparse file must be refused by its metadata, not
discovered by reading it: reading would block forever or fill memory. Errors are typed
(`InputFileError`) and name the file and the limit that was crossed.
"""
from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from facesynth.errors import InputDataError

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30

#: JSON documents facesynth writes nest a few levels; anything deeper was not written by it
MAX_JSON_DEPTH = 32


class InputFileError(InputDataError):
    """A file is not a regular file, is larger than its limit, or is not the document it should be;
    the message names the file and the limit."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


def _size_text(n: int) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("KB", KB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_regular(path: str | os.PathLike, max_bytes: int | None = None, what: str = "file") -> os.stat_result:
    """The file's stat when it is a regular file (links followed) of at most `max_bytes`; else InputFileError.

    A missing file raises FileNotFoundError as usual, so callers keep their own "not found" messages."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise InputFileError(path, f"the {what} is {kind}, not a regular file; refused")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputFileError(path, f"the {what} is {_size_text(st.st_size)}, more than the limit of "
                                   f"{_size_text(max_bytes)}; refused before reading it")
    return st


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str = "file", first: int | None = None) -> bytes:
    """The whole file (or only its `first` bytes), read only after check_regular; never more than
    `max_bytes` (a file that grows while it is read is refused too)."""
    check_regular(path, max_bytes, what)
    # O_NONBLOCK: should the path be swapped for a FIFO after the check, open() must not hang
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputFileError(path, f"the {what} is not a regular file; refused")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1 if first is None else min(first, max_bytes))
    finally:
        os.close(fd)
    if first is None and len(data) > max_bytes:
        raise InputFileError(path, f"the {what} grew past the limit of {_size_text(max_bytes)} while it was read")
    return data


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "]}":
            depth -= 1
    return deepest


def parse_json(text: str | bytes, where: str | os.PathLike, max_depth: int = MAX_JSON_DEPTH,
               what: str = "JSON document") -> Any:
    """A JSON text parsed after its nesting is checked (a deeply nested document would raise
    RecursionError inside json); InputFileError names `where` on any problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFileError(where, f"the {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise InputFileError(where, f"the {what} nests {depth} levels deep, more than the limit of {max_depth}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputFileError(where, f"the {what} is not valid JSON ({exc})") from None


def read_json(path: str | os.PathLike, max_bytes: int = 4 * MB, what: str = "JSON document",
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON file a user may have received: regular, at most `max_bytes`, at most `max_depth` deep."""
    return parse_json(read_bytes(path, max_bytes, what), Path(path), max_depth, what)


#: the longest file name (one path component) Linux file systems take, in bytes
NAME_MAX = 255


def name_too_long(path: str | os.PathLike) -> str | None:
    """Why `path` cannot exist on a Linux file system because one of its names is too long, or None."""
    longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
    if longest <= NAME_MAX:
        return None
    return (f"{os.fsdecode(path)}: a name in this path is {longest} bytes long, more than the {NAME_MAX} the "
            "file system allows; use a shorter name")


def os_error_text(exc: OSError) -> str:
    """An OSError about a path, in words that say what to change (no errno jargon, no traceback)."""
    name = exc.filename if exc.filename is not None else ""
    path = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    code = exc.errno
    if code == errno.ENAMETOOLONG:
        return name_too_long(path) or f"{path}: the path is longer than the file system allows; use a shorter one"
    why = {errno.EISDIR: "is a directory; give a file name (a path inside it, say)",
           errno.ENOTDIR: "a part of this path is a file, not a directory",
           errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.ENOENT: "no such file or directory", errno.EEXIST: "already exists",
           errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
           errno.ELOOP: "too many levels of symbolic links", errno.EMFILE: "too many open files",
           }.get(code, exc.strerror or type(exc).__name__)
    second = f" -> {os.fsdecode(exc.filename2)}" if exc.filename2 is not None else ""
    return f"{path}{second}: {why}" if path else why


def check_output_path(path: str | os.PathLike, what: str, directory: bool = False, example: str = "out") -> Path:
    """A path a command will write to, checked before any work is done: no name too long, and not a
    directory where a file goes (nor a file where a directory goes); UsageError (exit 2) otherwise."""
    from facesynth.errors import UsageError

    p = Path(path)
    why = name_too_long(p)
    if why:
        raise UsageError(f"{what}: {why}")
    try:
        if directory and p.exists() and not p.is_dir():
            raise UsageError(f"{what} {p} is a file; give a directory (new or existing)")
        if not directory and p.is_dir():
            raise UsageError(f"{what} {p} is a directory; give a file name (e.g. {p / example})")
        for parent in p.parents:  # the first existing folder above must be a folder
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"{what} {p}: {parent} is a file, not a directory")
                break
    except OSError as exc:
        raise UsageError(f"{what}: {os_error_text(exc)}") from None
    return p
