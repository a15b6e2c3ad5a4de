"""Augmentation for small captures and the eye/mouth weight (issue 21, item 2): the same
geometric change on drawing, target and weight map, checked against numpy's own rotation; colour
jitter touches only the face's colour; the detail map covers eyes and mouth and nothing else."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facesynth.model.augment import affine, augment_pair, colour_jitter, detail_mask
from facesynth.model.losses import weighted_l1
from facesynth.model.toy_data import toy_frame


def test_a_quarter_turn_is_numpys_rotation_and_identity_changes_nothing():
    img = torch.arange(64.0).view(1, 1, 8, 8)
    turned, same = affine([img, img], torch.ones(1), torch.tensor([90.0]), torch.zeros(1, 2), [-1.0, -1.0])
    assert np.array_equal(turned[0, 0].numpy(), np.rot90(img[0, 0].numpy(), 1))  # counter-clockwise
    still, none = affine([img, None], torch.ones(1), torch.zeros(1), torch.zeros(1, 2), [-1.0, 0.0])
    assert torch.equal(still, img) and none is None


def test_drawing_target_and_map_move_together_and_the_border_is_background():
    torch.manual_seed(0)
    base = torch.rand(3, 1, 16, 16) * 2 - 1
    target = torch.cat([base.expand(3, 3, 16, 16), base], 1)
    x, y, d = augment_pair(base, target, (base > 0).float(), 3, 0.1, 30.0)
    assert torch.equal(y[:, 3:], x)  # depth and drawing: nearest, alike
    moved = x != -1.0
    assert torch.equal(d.bool(), (x > 0) & moved)  # the map went where the pixels went; 0 outside
    assert bool((x[:, :, 0, 0] == -1.0).any())  # a 30 degree turn leaves corners without a source
    assert set(x[moved].tolist()) <= set(base.flatten().tolist())  # nearest: no blended values
    assert bool((y[:, :3][~moved.expand(-1, 3, -1, -1)] == -1.0).all())  # colour: background where depth is
    assert bool((y[:, :3] >= -1.0).all() and (y[:, :3] <= 1.0).all())


def test_colour_jitter_changes_face_colour_only():
    torch.manual_seed(1)
    y = torch.rand(2, 4, 8, 8) * 2 - 1
    y[:, :, :2] = -1.0  # background rows
    out = colour_jitter(y, 0.2)
    assert torch.equal(out[:, 3], y[:, 3]) and bool((out[:, :3, :2] == -1.0).all())
    # per sample one gain and bias: (c + 1) * g - 1 + b, as a straight line through the face pixels
    for i in range(2):
        face = y[i, 3] > -1
        a, b = y[i, :3][:, face].flatten().numpy(), out[i, :3][:, face].flatten().numpy()
        inside = (b > -0.99) & (b < 0.99)
        slope, icept = np.polyfit(a[inside] + 1, b[inside] + 1, 1)
        assert 0.8 <= slope <= 1.2 and abs(icept) <= 0.2 + 1e-6
        assert np.abs((a[inside] + 1) * slope + icept - (b[inside] + 1)).max() < 1e-5


def test_detail_map_covers_eyes_and_mouth_only():
    _, _, _, lm = toy_frame(128, 64.0, 64.0, 44.0, 0.6)
    m = detail_mask(lm, 128)
    inside = lambda p: bool(m[int(round(p[1])), int(round(p[0]))])  # noqa: E731
    assert all(inside(lm[i]) for i in range(36, 68))  # eye and lip points
    assert not any(inside(lm[i]) for i in (0, 8, 16, 27, 29, 30))  # jaw, nose
    assert 0.02 < m.mean() < 0.2


def test_detail_weight_in_l1_by_hand():
    fake, target = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    detail = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # every error 1; one pixel of four weighted 1 + 3 = 4: mean weight (4 + 3) / 4 = 1.75
    assert float(weighted_l1(fake, target, 1.0, detail, 3.0)) == pytest.approx(1.75)
    assert float(weighted_l1(fake, target, 1.0, detail, 0.0)) == pytest.approx(1.0)


def test_augment_until_stops_moving_the_pairs_after_that_share_of_the_steps(tmp_path, monkeypatch):
    """8 steps with augment_until 0.5: the first 4 batches are moved, the last 4 are as captured."""
    import facesynth.model.train as train_mod
    from facesynth.model.dataset import TRAIN, load_pairs
    from facesynth.model.toy_data import write_toy_store

    moved, steps = [], []

    def counting(x, y, detail, *args):
        moved.append(steps[-1])  # the step being trained
        return x, y, detail

    monkeypatch.setattr(train_mod, "augment_pair", counting)
    torch.set_num_threads(1)
    store = write_toy_store(tmp_path / "s.zarr", n_train=4, n_eval=0, size=32)
    cfg = train_mod.TrainConfig(size=32, ngf=4, ndf=4, steps=6, decay_steps=2, batch_size=2, lpips=False,
                                device="cpu", augment_px=2, augment_until=0.5, eval_every_s=0)
    orig = train_mod.Trainer.train_step

    def step(self, x, y, detail=None):
        steps.append(self.step)
        return orig(self, x, y, detail)

    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    train_mod.Trainer(cfg, tmp_path / "run").fit(load_pairs(store, TRAIN))
    assert steps == list(range(8)) and moved == [0, 1, 2, 3]
