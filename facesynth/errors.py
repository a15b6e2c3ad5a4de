"""Typed errors shared by every part of facesynth.

Exit codes (see cli.py): 0 ok, 1 a run failed, 2 an invalid graph file or bad usage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from facesynth.terminal_text import terminal_safe


class FacesynthError(Exception):
    """Base class: every error facesynth raises on purpose derives from it."""

    exit_code = 1
    retryable = True  # whether restarting a node and retrying its item could help


@dataclass
class Problem:
    """One problem found in a graph file, with where it is and how to fix it."""

    file: str
    line: int
    col: int
    message: str
    hint: str = ""

    def __str__(self) -> str:  # one line each: a value quoted in it may hold control characters
        text = terminal_safe(f"{self.file}:{self.line}:{self.col}: {self.message}", newlines=False)
        return f"{text}\n    hint: {terminal_safe(self.hint, newlines=False)}" if self.hint else text


@dataclass
class GraphError(FacesynthError):
    """A graph file (or a --set override) is invalid; carries every problem found at once."""

    problems: list[Problem] = field(default_factory=list)
    exit_code = 2

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid graph: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(str(p) for p in self.problems)])


class UsageError(FacesynthError):
    """The command line itself is wrong."""

    exit_code = 2


class RunError(FacesynthError):
    """A graph run failed: a node kept failing after its restarts."""

    def __init__(self, node: str, chunk: str, cause: str, traceback: str = ""):
        self.node, self.chunk, self.cause, self.traceback = node, chunk, cause, traceback
        super().__init__(f"node '{node}' failed on chunk {chunk}: {cause}")


class StoreError(FacesynthError):
    """The frame store is missing, incompatible, or asked for frames it does not hold."""


class InputDataError(FacesynthError):
    """Input data (a recording, an image folder, a message) is corrupt or not what was declared."""

    retryable = False  # reading the same bytes again gives the same error


class MissingDependencyError(FacesynthError):
    """An optional package, device or model file is not available; the message says how to get it."""

    retryable = False


class ModelFileError(InputDataError):
    """A model file (checkpoint, export) is missing, damaged, not safe to load, or belongs to
    another store; the message names the file and what to do."""


class ModelWriteError(ModelFileError):
    """A checkpoint or export could not be written (a full disk...); the previous one is intact."""


class StoreLockedError(StoreError):
    """Another run holds the store's lock (one run per store); the message names its owner."""

    retryable = False


class NotAStoreError(StoreError):
    """A path that should be a facesynth store (or a new directory) is something else; nothing
    is deleted or written there."""

    exit_code = 2
    retryable = False


class StoreDamaged(StoreError):
    """Store data is missing or does not decode; names the array, chunk and frames, and the
    command that repairs it. Reading the same bytes again gives the same error: not retried."""

    retryable = False

    def __init__(self, message: str, array: str = "", chunk: int | None = None,
                 frames: tuple[int, int] | None = None):
        self.array, self.chunk, self.frames = array, chunk, frames
        super().__init__(message)


class SourceMismatchError(StoreError):
    """A run would add frames from another source (a different recording) to a store made from
    one; refused before anything is written. The message names both and what to do."""

    retryable = False


class PortInUseError(FacesynthError):
    """A server could not bind its address (another program, or another graph, holds the port)."""

    retryable = False
