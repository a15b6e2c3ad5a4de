"""Bookkeeping by steps, not epochs (issue 21, item 3): a step budget whatever the set's size,
its learning-rate schedule, evaluations every N steps or seconds (and at the end), checkpoints by
time, and where the evaluations fall never changes what is learned."""
from __future__ import annotations

import pytest
import torch

from facesynth.model.dataset import EVAL, TRAIN, load_pairs
from facesynth.model.schedule import Cadence, plan
from facesynth.model.toy_data import write_toy_store
from facesynth.model.train import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    return TrainConfig(**{"size": 32, "ngf": 4, "ndf": 4, "batch_size": 4, "lpips": False, "device": "cpu",
                          "log_every_s": 0.0, **kw})


@pytest.fixture
def pairs(tmp_path):
    store = write_toy_store(tmp_path / "s.zarr", n_train=10, n_eval=2, size=32)  # 3 steps an epoch
    return load_pairs(store, TRAIN), load_pairs(store, EVAL)


def test_a_step_budget_trains_that_many_steps_with_the_lr_decayed_each_step(tmp_path, pairs):
    events = []
    tr = Trainer(_cfg(steps=5, decay_steps=3, lr=0.01, eval_every_steps=3, eval_every_s=0),
                 tmp_path / "run", callback=lambda n, d: events.append((n, d)))
    res = tr.fit(*pairs)
    assert res["status"] == "done" and tr.step == 8 and tr.epoch == 2 and tr.epoch_step == 2  # 8 = 2 x 3 + 2
    lrs = [d["lr"] for n, d in events if n == "train.step"]
    # 5 steps at 0.01, then 1 - k/4 of it for k = 1..3 (the pix2pix linear policy, per step)
    assert lrs == pytest.approx([0.01] * 5 + [0.0075, 0.005, 0.0025])
    evals = [d for n, d in events if n == "train.epoch"]
    assert [(e["step"], e["steps"], e["epoch"], e["epochs"]) for e in evals] == [(3, 8, 1, 3), (6, 8, 2, 3),
                                                                                 (8, 8, 2, 3)]
    assert all(e["eval"]["frames"] == 2 and e["preview"].endswith(f"step_{e['step']:08d}.png") for e in evals)


def test_where_evaluations_fall_never_changes_what_is_learned(tmp_path, pairs):
    every = Trainer(_cfg(epochs=2, decay_epochs=1, eval_every_steps=1, eval_every_s=0), tmp_path / "a")
    every.fit(*pairs)
    end_only = Trainer(_cfg(epochs=2, decay_epochs=1, eval_every_steps=0, eval_every_s=0), tmp_path / "b")
    end_only.fit(*pairs)
    assert (len(every.history), len(end_only.history)) == (9, 1)
    for k, v in every.G.state_dict().items():
        assert torch.equal(v, end_only.G.state_dict()[k]), k
    assert every.history[-1]["eval"] == end_only.history[-1]["eval"]
    # no evaluation on the way: one kept checkpoint, at the end
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["best.pt", "latest.pt",
                                                                                  "step_00000009.pt"]


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_cadence_by_steps_or_seconds_and_checkpoints_at_the_first_evaluation_after_their_interval():
    clock = FakeClock()
    c = Cadence(eval_every_steps=100, eval_every_s=60.0, checkpoint_every_s=300.0, clock=clock)
    assert c.eval_due(100) and c.eval_due(200) and not c.eval_due(150)
    clock.t += 59.0
    assert not c.eval_due(151)
    clock.t += 1.0
    assert c.eval_due(151)  # 60 s of training since the last one
    c.evaluated()
    assert not c.eval_due(152) and not c.checkpoint_due(at_eval=True)  # 60 s since the start
    clock.t += 300.0
    assert not c.checkpoint_due(at_eval=False) and c.checkpoint_due(at_eval=True)
    c.saved()
    assert not c.checkpoint_due(at_eval=True)
    off = Cadence(eval_every_steps=0, eval_every_s=0.0, checkpoint_every_s=300.0, clock=clock)
    assert not off.eval_due(100)
    clock.t += 300.0
    assert off.checkpoint_due(at_eval=False)  # no evaluations: by time after any step


def test_the_plan_counts_epochs_or_steps():
    by_epochs = plan(TrainConfig(epochs=10, decay_epochs=7, batch_size=4), 28)
    assert (by_epochs.steps_per_epoch, by_epochs.total_steps, by_epochs.total_epochs) == (7, 119, 17)
    by_steps = plan(TrainConfig(steps=600, decay_steps=400, batch_size=4), 28)
    assert (by_steps.total_steps, by_steps.total_epochs, by_steps.by_steps) == (1000, 143, True)
