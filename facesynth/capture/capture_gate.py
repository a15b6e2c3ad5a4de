"""Which captured frames to keep, and whether each goes to train or eval (the original's rules).

A frame is kept only when exactly one face is seen and the head's yaw, pitch and roll are all
within `max_angle_deg` (default 10) of frontal; rejects are counted by reason. Every
`eval_every`-th kept frame (default 7th) goes to eval until eval holds its count, the others to
train; capture is done when both counts are reached. Pure logic: the face count and pose come
from whatever detector the caller uses.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

TRAIN, EVAL = 0, 1
REASONS = ("no_face", "several_faces", "yaw", "pitch", "roll", "damaged")


@dataclass
class Decision:
    keep: bool
    split: int | None = None      # TRAIN or EVAL when kept
    reason: str | None = None     # one of REASONS when rejected


@dataclass
class CaptureGate:
    """Stateful gate over a stream of frames; `decide` once per frame, in order."""

    train: int = 1500
    eval: int = 250
    max_angle_deg: float = 10.0
    eval_every: int = 7
    gate_faces: bool = True
    kept: int = 0
    counts: list[int] = field(default_factory=lambda: [0, 0])
    rejects: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.train < 0 or self.eval < 0 or self.train + self.eval == 0:
            raise ValueError("train and eval counts must be >= 0 and not both 0")
        if self.eval_every < 1:
            raise ValueError("eval_every must be >= 1")

    @property
    def done(self) -> bool:
        return self.counts[TRAIN] >= self.train and self.counts[EVAL] >= self.eval

    @property
    def wanted(self) -> int:
        return self.train + self.eval

    def check(self, faces: int | None, pose: Sequence[float] | None) -> str | None:
        """The reject reason for a frame with `faces` faces and (yaw, pitch, roll) degrees, or None."""
        if not self.gate_faces:
            return None
        if faces is None or faces == 0:
            return "no_face"
        if faces > 1:
            return "several_faces"
        if pose is None:
            return "no_face"
        for name, angle in zip(("yaw", "pitch", "roll"), pose):
            if not abs(float(angle)) <= self.max_angle_deg:  # NaN is rejected too
                return name
        return None

    def split_next(self) -> int | None:
        """The split the next kept frame goes to (None when both counts are reached)."""
        if self.done:
            return None
        want_eval = (self.kept + 1) % self.eval_every == 0
        if want_eval and self.counts[EVAL] < self.eval:
            return EVAL
        if self.counts[TRAIN] < self.train:
            return TRAIN
        return EVAL

    def decide(self, faces: int | None = 1, pose: Sequence[float] | None = (0.0, 0.0, 0.0),
               damaged: bool = False, split: int | None = None) -> Decision:
        """Decide one frame; updates counts. After `done`, every frame is refused with reason 'done'.

        `split` forces the split of a kept frame (data sets that already have one).
        """
        auto = self.split_next()
        if auto is None:
            return Decision(False, reason="done")
        split = auto if split is None else int(split)
        reason = "damaged" if damaged else self.check(faces, pose)
        if reason is not None:
            self.rejects[reason] += 1
            return Decision(False, reason=reason)
        self.kept += 1
        self.counts[split] += 1
        return Decision(True, split=split)

    def summary(self) -> dict:
        """Counts for reports: kept per split and rejects by reason."""
        return {"train": self.counts[TRAIN], "eval": self.counts[EVAL], "kept": self.kept,
                "rejects": {r: int(self.rejects.get(r, 0)) for r in REASONS}}

    def state(self) -> dict:
        """Picklable state, to resume a capture where it stopped."""
        return {"kept": self.kept, "counts": list(self.counts), "rejects": dict(self.rejects)}

    def restore(self, state: dict) -> None:
        self.kept = int(state["kept"])
        self.counts = [int(c) for c in state["counts"]]
        self.rejects = Counter({str(k): int(v) for k, v in state.get("rejects", {}).items()})
