"""`facesynth graph run --tui`: run a graph in a background thread while the dashboard shows it.

Textual needs the main thread (signal handlers, the terminal), so the supervisor runs on its
own event loop in a worker thread and feeds its records to the dashboard through `on_record`.
Ray is started before, in the main thread: ray.init enables faulthandler on stderr's file
descriptor, which Textual has replaced by then.
"""
from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any

from facesynth.tui.app import Dashboard
from facesynth.tui.sources import QueueSource


class _Forwarding(QueueSource):
    """A QueueSource that, once the dashboard is closed, prints records as plain progress instead."""

    def __init__(self, name: str):
        super().__init__(name)
        self.forward: Any = None

    def __call__(self, rec: dict) -> None:
        fwd = self.forward
        if fwd is not None:
            fwd(rec)
        else:
            super().__call__(rec)


class _Runner:
    """The supervisor on its own loop in a thread; `cancel()` stops it the way Ctrl-C would."""

    def __init__(self, supervisor: Any):
        self.supervisor = supervisor
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._task = loop.create_task(self.supervisor.run())
            self._loop = loop
            self.result = loop.run_until_complete(self._task)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        finally:
            loop.close()
            self.done.set()

    def cancel(self, timeout_s: float = 60.0) -> None:
        """Cancel the run (it writes `run_end` interrupted, keeps progress) and wait for it."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not self.done.is_set():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop already closed
        self.done.wait(timeout_s)


def run_with_dashboard(loaded: Any, *, backend: str = "ray", address: str | None = None, restart: bool = False,
                       linger_s: float = 2.0, poll_s: float = 0.25, headless: bool = False) -> Any:
    """Run `loaded` (a LoadedGraph) with the dashboard on screen; returns the RunResult.

    Without a terminal on stderr it falls back to plain progress lines. The dashboard closes
    `linger_s` after the run ends. Pressing q closes it early: the run goes
    on with plain progress lines. Ctrl-C (in the dashboard or after) or SIGTERM stops the run
    like it does without --tui (run_end "interrupted", progress kept) and raises
    KeyboardInterrupt. A run failure is raised after the terminal is restored, as run_graph does.
    """
    from facesynth.runtime.api import make_backend, new_supervisor, run_graph

    if not headless and not (sys.__stderr__ is not None and sys.__stderr__.isatty()):
        from facesynth.runtime.console import ConsoleProgress

        print("--tui needs a terminal (Textual draws on stderr); showing plain progress", file=sys.stderr)
        return run_graph(loaded, backend=backend, address=address, restart=restart, on_record=ConsoleProgress())
    be = make_backend(backend, address)
    source = _Forwarding(loaded.spec.name)
    runner = _Runner(new_supervisor(loaded, be, restart=restart, on_record=source))
    thread = threading.Thread(target=runner.run, name="facesynth-run", daemon=True)
    app = Dashboard(source, poll_s=poll_s, exit_on_end=True, linger_s=linger_s, until=runner.done)
    old_term = _on_sigterm(app.request_interrupt)
    try:
        thread.start()
        try:
            app.run(headless=headless)
        finally:
            if old_term is not None:  # SIGTERM -> KeyboardInterrupt again (cli's handler)
                signal.signal(signal.SIGTERM, old_term)
        if app.return_value == "interrupt" and not runner.done.is_set():
            raise KeyboardInterrupt  # Ctrl-C in the dashboard stops the run, as without --tui
        if not runner.done.is_set():
            from facesynth.runtime.console import ConsoleProgress

            print("dashboard closed; the run goes on (Ctrl-C stops it, a rerun continues where it stopped)",
                  file=sys.stderr)
            source.forward = ConsoleProgress()
            while not runner.done.wait(0.5):
                pass
    except KeyboardInterrupt:
        runner.cancel()
        raise
    finally:
        thread.join(timeout=60)
        be.shutdown()
    if runner.error is not None:
        raise runner.error
    return runner.result


def _on_sigterm(callback: Any) -> Any:
    """While the dashboard runs, SIGTERM asks it to stop (a raise inside Textual's loop would not).

    Returns the previous handler (None when not on the main thread, where signals cannot be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: callback())
