"""How long training runs, its learning rate at each step, and when it stops to evaluate, write a
preview and save a checkpoint: all counted in steps (or seconds), not epochs.

Why: with a small capture (28 frames, batch 4) an epoch is 7 steps, and evaluating, previewing
and checkpointing at every epoch end took most of the training time (issue 21). The budget is
`epochs` + `decay_epochs` passes over the data (the original's schedule, the learning rate lowered
once per epoch), or, when `steps` is set, `steps` + `decay_steps` steps whatever the set's size
(the same shape, lowered every step). Evaluation (metrics + preview) comes every
`eval_every_steps` steps or `eval_every_s` seconds of training, whichever is first (0 turns one
off), and always at the end; a checkpoint is saved at the first evaluation after
`checkpoint_every_s` seconds since the last one (by time alone when evaluation is off), at the end
and when stopped. None of this touches the random state, so where the evaluations fall never
changes what is learned.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """pix2pix 'linear' policy: 1 for `epochs`, then down to ~0 over `decay_epochs` (0-based epoch)."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(decay_epochs + 1)


@dataclass(frozen=True)
class Plan:
    """The budget of one run on a set of `n_train` pairs."""

    steps_per_epoch: int
    total_steps: int
    total_epochs: int   # passes over the data (the last one may be partial with a step budget)
    by_steps: bool

    def lr_factor(self, cfg, step: int, epoch: int) -> float:
        """Learning-rate factor for the step about to run (0-based `step`, in 0-based `epoch`)."""
        if self.by_steps:
            return lr_factor(step, cfg.steps, cfg.decay_steps)
        return lr_factor(epoch, cfg.epochs, cfg.decay_epochs)


def plan(cfg, n_train: int) -> Plan:
    """`cfg` is a TrainConfig: epochs/decay_epochs, or steps/decay_steps when steps > 0."""
    per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    if cfg.steps:
        total = cfg.steps + cfg.decay_steps
        return Plan(per_epoch, total, math.ceil(total / per_epoch), True)
    return Plan(per_epoch, cfg.total_epochs * per_epoch, cfg.total_epochs, False)


class Cadence:
    """Whether an evaluation or a checkpoint is due after a step (wall-clock seconds, monotonic)."""

    def __init__(self, eval_every_steps: int, eval_every_s: float, checkpoint_every_s: float,
                 clock=time.monotonic):
        self.eval_every_steps, self.eval_every_s = int(eval_every_steps), float(eval_every_s)
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.clock = clock
        self.last_eval_t = self.last_save_t = clock()

    @property
    def evaluates(self) -> bool:
        return self.eval_every_steps > 0 or self.eval_every_s > 0

    def eval_due(self, step: int) -> bool:
        """At every multiple of eval_every_steps (the same steps after a resume), or by time."""
        if self.eval_every_steps > 0 and step % self.eval_every_steps == 0:
            return True
        return self.eval_every_s > 0 and self.clock() - self.last_eval_t >= self.eval_every_s

    def evaluated(self) -> None:
        self.last_eval_t = self.clock()

    def checkpoint_due(self, at_eval: bool) -> bool:
        """At an evaluation (or after any step when evaluation is off), once the interval has passed."""
        if self.evaluates and not at_eval:
            return False
        return self.clock() - self.last_save_t >= self.checkpoint_every_s

    def saved(self) -> None:
        self.last_save_t = self.clock()
