"""One run per store: a lock file in the store naming the run that owns it.

`<store>/facesynth_run.lock` holds {"run_id", "pid", "host", "started"}. It is created
atomically (written to a temporary file, then hard-linked into place, which fails if a lock
exists), so a lock file is never half-written. A second run finds it and stops with
StoreLockedError naming the owner. A lock left by a run that died without releasing it (its
pid no longer exists on this host, or is now a process started after the lock: a reused pid)
is taken over with a warning; a lock from another host is never taken over (we cannot see
its processes): the message says how to remove it.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from facesynth.errors import StoreLockedError
from facesynth.input_files import KB, InputFileError, check_regular, parse_json, read_bytes
from facesynth.terminal_text import terminal_safe

LOCK = "facesynth_run.lock"
MAX_LOCK_BYTES = 64 * KB  # as written: ~150 bytes


def _warn_stderr(message: str) -> None:
    print(f"warning: {terminal_safe(message)}", file=sys.stderr)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_start_unix(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from /proc; None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def read_owner(lock_file: Path) -> dict | None:
    """The lock's owner record; None if the file is gone; {} if it does not parse. A lock that is
    not a regular file within MAX_LOCK_BYTES (a link to /dev/zero, a FIFO, a huge file: not one a
    run wrote) is a StoreLockedError naming it: it is neither read nor taken over."""
    try:
        raw = read_bytes(lock_file, MAX_LOCK_BYTES, "lock file")
    except FileNotFoundError:
        return None
    except InputFileError as exc:
        raise StoreLockedError(f"store lock {exc}; facesynth neither reads nor takes over such a lock: if no run "
                               f"is using the store, delete {lock_file}") from None
    except OSError:
        return {}
    try:
        data = parse_json(raw, lock_file, what="lock file")
    except InputFileError:  # not JSON, not UTF-8, nested: damage, as a torn write would be
        return {}
    return data if isinstance(data, dict) else {}


def open_guard(path: Path):
    """A guard file of the store (for flock), created if absent; opened without blocking and refused
    (InputFileError) unless it is a regular file: a FIFO put in its place must not hang a run."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        check_regular(path, what="lock guard file")  # raises, naming what it is
        raise InputFileError(path, "the lock guard file is not a regular file; refused")
    return os.fdopen(fd, "r+b")


def describe_owner(owner: dict) -> str:
    return (f"run {owner.get('run_id', '?')} (pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, "
            f"started {owner.get('started', '?')})")


class StoreLock:
    """The lock of one store, held by one run from acquire() to release()."""

    def __init__(self, store: str | os.PathLike, run_id: str, warn: Callable[[str], None] = _warn_stderr):
        self.store = Path(store)
        self.file = self.store / LOCK
        self.run_id = run_id
        self.warn = warn
        self.owner = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "started_unix": time.time()}
        self.held = False

    def _stale(self, owner: dict) -> bool:
        if not owner:  # unreadable: lock files are written whole, so this is damage, not a live run
            return True
        pid = owner.get("pid")
        if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        if not pid_alive(pid):
            return True
        # the pid lives, but a process that started after the lock was taken cannot own it (pid reused)
        began, locked = process_start_unix(pid), owner.get("started_unix")
        return began is not None and isinstance(locked, (int, float)) and began > locked + 2.0

    def acquire(self) -> "StoreLock":
        """Take the lock, or raise StoreLockedError naming the run that holds it."""
        self.store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.store)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.owner, fh)
            for _ in range(5):
                try:
                    os.link(tmp, self.file)
                    self.held = True
                    atexit.register(self.release)  # a driver leaving without its finally blocks
                    return self
                except FileExistsError:
                    pass
                owner = read_owner(self.file)
                if owner is None and self.file.is_symlink():
                    raise StoreLockedError(f"store lock {self.file} is a link to nothing, which no run writes; "
                                           f"if no run is using the store, delete it")
                if owner is None:
                    continue  # released meanwhile: try again
                if not self._stale(owner):
                    raise StoreLockedError(
                        f"store {self.store} is in use by {describe_owner(owner)}; one run per store: "
                        "wait for it to end, stop it, or use another store.path"
                        + (f" (if pid {owner.get('pid')} is not that run, delete {self.file})"
                           if owner.get("host") == socket.gethostname() else
                           f" (that run is on another host; if it is gone, delete {self.file})"))
                self._take_over(owner)
            raise StoreLockedError(f"store {self.store}: could not take its lock {self.file} (other runs keep taking it)")
        finally:
            os.unlink(tmp)

    def _take_over(self, owner: dict) -> None:
        """Remove a stale lock, unless another run replaced it meanwhile (checked under a guard)."""
        with open_guard(self.store / ".lock.guard") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if read_owner(self.file) == owner:
                self.file.unlink(missing_ok=True)
                self.warn(f"store {self.store}: taking over the lock of {describe_owner(owner) if owner else 'an unknown run'}, "
                          "which is no longer running")

    def release(self) -> None:
        """Remove the lock if this run still holds it (idempotent)."""
        if not self.held:
            return
        self.held = False
        atexit.unregister(self.release)
        try:
            owner = read_owner(self.file)
        except StoreLockedError:  # replaced meanwhile by something no run writes: not ours to remove
            return
        if owner and owner.get("run_id") == self.run_id and owner.get("pid") == os.getpid():
            self.file.unlink(missing_ok=True)

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
