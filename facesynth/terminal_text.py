"""Text from files and arguments, made safe to show on a terminal.

A value from a graph file, a `--set`, a run log, a model export or a store may hold control
characters: an ESC sequence sets the window title or clears the screen, CR rewrites a line
already shown, BEL rings, a bidi override reorders what is read. Every such text is escaped
here, one way, before it reaches a terminal (error messages, graph problems, the run console):
`\\x1b`, `\\r`, `\\u202e` are printed as those visible characters. JSON output needs nothing:
json.dumps escapes control characters itself.
"""
from __future__ import annotations

import re
import sys
from typing import Any, TextIO

# C0 controls, DEL and C1 controls (Unicode category Cc), the line/paragraph separators and the
# bidirectional formatting characters (ALM, LRM, RLM, embeddings, overrides, isolates)
_OTHERS = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(rf"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(rf"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def terminal_safe(text: Any, newlines: bool = True) -> str:
    """`text` (str() of anything) with every control character escaped; `newlines=True` keeps
    LF, for messages whose own lines are part of their layout (a graph's problem list)."""
    s = text if isinstance(text, str) else str(text)
    return (_UNSAFE_BUT_NEWLINE if newlines else _UNSAFE).sub(_escape, s)


def shown(value: Any, limit: int = 200) -> str:
    """A value quoted inside a message: one line, control characters escaped, at most `limit`
    characters (longer is cut with "...")."""
    s = terminal_safe(value, newlines=False)
    return s if len(s) <= limit else s[:limit] + "..."


def echo(text: Any = "", file: TextIO | None = None, end: str = "\n") -> None:
    """print() for text that may come from a file or an argument (newlines kept)."""
    print(terminal_safe(text), file=file or sys.stdout, end=end)
