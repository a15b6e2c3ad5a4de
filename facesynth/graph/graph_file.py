"""Read a graph file's bytes safely: a regular file, small, UTF-8, no control characters.

Graph files come from users and from the network drive alike, so nothing here trusts them:
a device or a FIFO (`/dev/zero`, a pipe) is refused before a byte is read, a file above
MAX_GRAPH_BYTES is refused from its size (and we never read more than that), and bad bytes
are reported at their line:col, like every other problem in a graph file.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from facesynth.errors import GraphError, Problem
from facesynth.graph.yaml_positions import Located, YamlSyntaxError, load_located

# The shipped graphs are 1-2 KB; 256 KiB leaves room for long comments and big param lists while
# keeping the parse of the largest accepted file well under a second.
MAX_GRAPH_BYTES = 256 << 10

# What YAML 1.1 accepts as printable (the same set PyYAML's reader enforces).
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")


def _refuse(file: str, message: str, hint: str, line: int = 1, col: int = 1) -> GraphError:
    return GraphError([Problem(file, line, col, message, hint)])


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of character `index` in `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def read_graph_bytes(path: str | Path, limit: int = MAX_GRAPH_BYTES) -> bytes:
    """The file's bytes; GraphError if it is not a regular file or is larger than `limit`."""
    file = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore the flag
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise _refuse(file, f"cannot read graph file: {getattr(exc, 'strerror', None) or exc}",
                      "check the path; graph files are YAML, e.g. graphs/capture_to_model.yaml") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a pipe" if stat.S_ISFIFO(st.st_mode) else "a special file")
        raise _refuse(file, f"graph file is {kind}, not a regular file", "give the path of a .yaml graph file")
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > limit:
            raise _refuse(file, f"graph file is {st.st_size:,} bytes, above the limit of {limit:,}",
                          "graph files are small YAML text files; is this the right file?")
        data = fh.read(limit + 1) or b""  # the size may have changed since fstat: never read past the limit
    if len(data) > limit:
        raise _refuse(file, f"graph file is larger than the limit of {limit:,} bytes",
                      "graph files are small YAML text files; is this the right file?")
    return data


def decode_graph_text(file: str, data: bytes) -> str:
    """UTF-8 text of `data`; GraphError at the line:col of the first undecodable or control byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[:exc.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise _refuse(file, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start}",
                      "save the graph file as UTF-8", line, col) from None
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line, col = line_col(text, bad.start())
        what = "a NUL byte" if bad.group() == "\x00" else f"control character U+{ord(bad.group()):04X}"
        raise _refuse(file, f"{what} is not allowed in a graph file",
                      "graph files are plain text; remove the character (is this a binary file?)", line, col)
    return text


def load_graph_file(path: str | Path) -> Located:
    """Read, decode and parse a graph file; every failure is a GraphError with a position and a hint."""
    file = str(path)
    text = decode_graph_text(file, read_graph_bytes(path))
    try:
        return load_located(text)
    except YamlSyntaxError as exc:
        raise _refuse(file, exc.message, exc.hint, exc.line, exc.col) from None
