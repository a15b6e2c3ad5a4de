"""What happens to a damaged source frame (`on_error`): one rule for every reader that can find damage.

A reader (an Azure Kinect MKV, a Record3D export, ...) yields its damaged frames as items whose
`error` says why, in order among the good ones. The policy then decides:
- skip (the default for nodes): the frame is left out, reported as a `capture.damaged` event and
  counted by kind in `capture.rejects` and the run summary; reading goes on;
- stop: reported and counted the same way, and reading ends there;
- fail: the run fails naming the frame (InputDataError: reading the same bytes again gives the
  same answer, so it is not retried). Nothing is reported before: the error is the report.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Literal, TypeVar

from pydantic import Field

from facesynth.errors import InputDataError

OnError = Literal["skip", "stop", "fail"]
POLICIES = ("skip", "stop", "fail")


def on_error_field():
    """The `on_error` parameter every damage-finding capture source declares (same default, same words)."""
    return Field("skip", description="a damaged frame: skip it and count it (each one a capture.damaged event), "
                                     "stop reading there (reported too), or fail the run")


T = TypeVar("T")


def apply_on_error(items: Iterable[T], on_error: str, why: Callable[[T], str | None]) -> Iterator[T]:
    """`items` under the policy: damaged ones (why(item) is not None) are passed on (skip), passed on
    as the last item (stop), or raised as InputDataError (fail)."""
    if on_error not in POLICIES:
        raise ValueError(f"on_error must be one of {', '.join(POLICIES)}, not {on_error!r}")
    for item in items:
        error = why(item)
        if error is None:
            yield item
            continue
        if on_error == "fail":
            raise InputDataError(error)
        yield item
        if on_error == "stop":
            return


class DamageLedger:
    """A source node's damaged frames: the policy applied to its frames, each one reported and counted.

    Frames are facesynth.capture.source.Frame objects; a damaged one has `error`, `damage` (its kind:
    jpeg, size, zip, ...) and `frames_lost` (frames it stands for, 1 unless a stretch was unreadable).
    """

    def __init__(self, on_error: str, report: Callable[..., None]):
        self.on_error = on_error
        self._report = report
        self.counts: dict[str, int] = {}
        self.frames_lost = 0

    def frames(self, frames: Iterable) -> Iterator:
        for fr in apply_on_error(frames, self.on_error, lambda f: f.error):
            if fr.error is not None:
                kind = fr.damage or "damaged"
                self.counts[kind] = self.counts.get(kind, 0) + 1
                self.frames_lost += fr.frames_lost
                # `tally`: counted by kind as a warning in the run summary
                self._report("capture.damaged", tally=kind, frame=fr.index, kind=kind, frames_lost=fr.frames_lost,
                             policy=self.on_error, error=fr.error)
            yield fr

    def summary(self) -> dict:
        """{"damaged": {kind: count}, "frames_lost": n} for capture.rejects, or {} when nothing was damaged."""
        return {"damaged": dict(self.counts), "frames_lost": self.frames_lost} if self.counts else {}
