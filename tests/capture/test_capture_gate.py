"""Capture gating and the train/eval split, with synthetic face counts and poses."""
from __future__ import annotations

import numpy as np
import pytest

from facesynth.capture.capture_gate import EVAL, TRAIN, CaptureGate


def test_every_seventh_kept_frame_goes_to_eval_until_counts_are_met():
    gate = CaptureGate(train=1500, eval=250)
    splits = []
    while not gate.done:
        d = gate.decide(1, (0.0, 0.0, 0.0))
        assert d.keep
        splits.append(d.split)
    assert len(splits) == 1750 and splits.count(EVAL) == 250 and splits.count(TRAIN) == 1500
    assert [i for i, s in enumerate(splits) if s == EVAL][:3] == [6, 13, 20]
    assert gate.decide(1, (0, 0, 0)).reason == "done"


def test_eval_full_or_train_full_fills_the_other():
    gate = CaptureGate(train=3, eval=5, eval_every=7)
    splits = [gate.decide().split for _ in range(8)]
    assert splits == [TRAIN, TRAIN, TRAIN, EVAL, EVAL, EVAL, EVAL, EVAL] and gate.done


def test_rejects_are_counted_by_reason():
    gate = CaptureGate(train=10, eval=2, max_angle_deg=10)
    frames = [(0, None), (2, (0, 0, 0)), (1, (12, 0, 0)), (1, (0, -10.5, 0)), (1, (0, 0, 30)),
              (1, (9.9, -9.9, 9.9)), (1, (np.nan, 0, 0)), (1, None)]
    kept = [gate.decide(f, p).keep for f, p in frames]
    assert kept == [False, False, False, False, False, True, False, False]
    s = gate.summary()
    assert s["rejects"] == {"no_face": 2, "several_faces": 1, "yaw": 2, "pitch": 1, "roll": 1, "damaged": 0}
    assert s["kept"] == 1 and s["train"] == 1


def test_limit_is_configurable_and_gating_can_be_off():
    assert CaptureGate(max_angle_deg=30).decide(1, (25, 0, 0)).keep
    off = CaptureGate(gate_faces=False)
    assert off.decide(0, None).keep and off.decide(3, (80, 80, 80)).keep
    assert off.decide(1, (0, 0, 0), damaged=True).reason == "damaged"


def test_state_round_trip_resumes_the_same_sequence():
    a = CaptureGate(train=20, eval=4)
    full = [a.decide().split for _ in range(24)]
    b = CaptureGate(train=20, eval=4)
    first = [b.decide().split for _ in range(10)]
    c = CaptureGate(train=20, eval=4)
    c.restore(b.state())
    assert first + [c.decide().split for _ in range(14)] == full


def test_bad_counts_rejected():
    with pytest.raises(ValueError):
        CaptureGate(train=0, eval=0)
    with pytest.raises(ValueError):
        CaptureGate(eval_every=0)


def test_declared_split_is_kept_and_counted():
    gate = CaptureGate(train=2, eval=1)
    got = [gate.decide(split=s).split for s in (EVAL, TRAIN, TRAIN)]
    assert got == [EVAL, TRAIN, TRAIN] and gate.done
