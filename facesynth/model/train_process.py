"""Training in a child process of its own, so that it can use every core.

Why: torch's OpenMP intra-op parallelism barely works in a Python thread that is not the
process's main thread (measured on this project's 2-core machines: a pix2pix step took the
same 0.47 s in a worker thread with 1 or 2 threads, 0.27 s in the main thread with 2), and a
node trains in a worker thread (`run_blocking`) of an actor that Ray started with
OMP_NUM_THREADS=1. The child's main thread trains with `threads` threads.

The protocol is JSON lines, never pickle: the job goes to the child's stdin, then "stop" when
the run is stopping (the child saves a checkpoint and returns "stopped"); the child sends
reports, then a result or an error, on its own copy of stdout (whatever a library prints goes
to stderr). End of stdin means the parent is gone: the child exits at once, leaving the
newest checkpoint as it was, so an orphan never trains on beside a restarted node.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from facesynth import errors
from facesynth.errors import FacesynthError


class TrainingProcessError(FacesynthError):
    """The training child process failed in a way that is not one of facesynth's typed errors
    (or died without an answer); the message says how."""


def _raise_child_error(err: dict) -> None:
    cls = getattr(errors, str(err.get("type")), None)
    message = str(err.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, FacesynthError):
        try:
            raise cls(message)
        except TypeError:  # an error class with another signature: keep its name in the text
            pass
    raise TrainingProcessError(f"training failed: {err.get('type')}: {message}")


def train_in_process(store_path: str, params: Any, frames: list[int] | None, out: Path,
                     report: Callable[..., None], stop: threading.Event | None, threads: int) -> dict:
    """facesynth.model.train_job.train_from_store, run in a child process with `threads` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    job = {"store": str(store_path), "params": params.model_dump(mode="json"), "out": str(out),
           "frames": None if frames is None else [int(f) for f in frames], "threads": int(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "facesynth.model.train_process"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8")
    finished = threading.Event()
    stop_sent = threading.Event()

    def forward_stop() -> None:
        while not finished.wait(0.2):
            if stop is not None and stop.is_set():
                stop_sent.set()
                _send(proc, "stop\n")
                return

    _send(proc, json.dumps(job) + "\n")
    watcher = threading.Thread(target=forward_stop, name="train-stop", daemon=True)
    watcher.start()
    result: dict | None = None
    error: dict | None = None
    try:
        for line in proc.stdout:
            try:
                msg = json.loads(line)  # our own child's JSON; nothing is unpickled
            except ValueError:
                raise TrainingProcessError(f"the training process sent an unreadable line: {line[:200]!r}") from None
            if msg.get("kind") == "report":
                report(msg["name"], **msg["data"])
            elif msg.get("kind") == "result":
                result = msg["result"]
            elif msg.get("kind") == "error":
                error = msg["error"]
        rc = proc.wait()
    finally:
        finished.set()
        if proc.poll() is None:  # the parent side failed (e.g. a report raised): no orphan
            proc.kill()
            proc.wait()
        watcher.join()
    if error is not None:
        _raise_child_error(error)
    if result is None:
        if stop_sent.is_set():  # stopped while the child was being killed with the rest of the run
            return {"status": "stopped", "epoch": -1, "step": -1}
        raise TrainingProcessError(f"the training process ended (exit code {rc}) without a result; "
                                   "its messages are in the log above (stderr)")
    return result


def _send(proc: subprocess.Popen, text: str) -> None:
    try:
        proc.stdin.write(text)
        proc.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the child has already ended; its exit code tells why


def _child_main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything printed, by Python or C code, goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which sends "stop"
    job = json.loads(sys.stdin.readline())
    stop = threading.Event()
    lock = threading.Lock()

    def watch_stdin() -> None:
        if sys.stdin.readline().strip() == "stop":
            stop.set()
        else:
            os._exit(3)  # end of stdin: the parent is gone

    def send(msg: dict) -> None:
        with lock:
            proto.write(json.dumps(msg, default=str) + "\n")

    threading.Thread(target=watch_stdin, name="train-stdin", daemon=True).start()
    import torch

    from facesynth.model.train_job import Pix2PixParams, train_from_store

    torch.set_num_threads(int(job["threads"]))
    try:
        result = train_from_store(job["store"], Pix2PixParams(**job["params"]), job["frames"], Path(job["out"]),
                                  lambda name, **data: send({"kind": "report", "name": name, "data": data}), stop)
        send({"kind": "result", "result": result})
    except Exception as exc:  # every failure goes back to the parent, typed where it is ours
        if not isinstance(exc, FacesynthError):
            traceback.print_exc()
        send({"kind": "error", "error": {"type": type(exc).__name__, "message": str(exc)}})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
