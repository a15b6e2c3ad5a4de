"""Metrics on known inputs, the preview grid, checkpoint safety and the node's parameters."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from facesynth.errors import InputDataError
from facesynth.model.checkpoint import load_checkpoint
from facesynth.model.metrics import depth_mae_mm, psnr, ssim
from facesynth.model.preview import preview_grid
from facesynth.model.train import lr_factor
from facesynth.nodes.registry import get


def test_psnr_and_ssim_known_values():
    a = torch.zeros(2, 3, 32, 32)
    b = a + 0.2  # 0.1 on the [0, 1] scale -> MSE 0.01 -> 20 dB
    assert psnr(a, b).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    noisy = (a + torch.randn_like(a) * 0.5).clamp(-1, 1)
    assert 0.0 < float(ssim(a + 0.1, noisy + 0.1)[0]) < 0.5
    assert float(ssim(a, b)[0]) == pytest.approx(((2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4)), abs=5e-4)  # float32 variances


def test_depth_mae_in_mm_only_inside_the_face():
    pred, true = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    pred[..., :2, :] = 0.1   # 0.1 unit = 5 mm over a 100 mm span
    pred[..., 2:, :] = 1.0   # outside the face: ignored
    face = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    face[..., :2, :] = True
    total, n = depth_mae_mm(pred, true, face, span_mm=100.0)
    assert n == 8 and total / n == pytest.approx(5.0)


def test_lr_schedule_is_linear_decay():
    f = [lr_factor(e, 30, 70) for e in range(100)]
    assert f[:30] == [1.0] * 30 and f[30] == pytest.approx(1 - 1 / 71) and f[99] == pytest.approx(1 / 71)
    assert all(a > b for a, b in zip(f[29:], f[30:]))


def test_preview_grid_layout():
    x = -torch.ones(2, 1, 8, 8)
    pred, y = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
    g = preview_grid(x, pred, y)
    assert g.shape == (16, 40, 3) and g.dtype == np.uint8
    assert g[0, 0, 0] == 0 and g[0, 8, 0] in (127, 128) and g[0, 39, 0] == 255


def test_checkpoint_refuses_code_and_foreign_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"config": {}, "epoch": 0, "step": 0, "G": Evil()}, protocol=2))
    with pytest.raises(InputDataError, match="not a readable"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(InputDataError, match="no 'config'"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(InputDataError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_node_kind_and_params():
    cls = get("model.pix2pix")
    assert cls is not None and cls.max_replicas == 1 and set(cls.inputs) == {"pairs"} and set(cls.outputs) == {"model"}
    p = cls.Params()
    assert (p.size, p.ngf, p.epochs, p.decay_epochs, p.batch_size, p.lr) == (256, 64, 30, 70, 1, 2e-4)
    assert (p.lambda_l1, p.lambda_feat, p.lambda_lpips, p.lpips_net) == (100.0, 10.0, 10.0, "alexnet")
    assert cls.Params(size=512).size == 512
    for bad in ({"size": 300}, {"device": "tpu"}, {"lpips_net": "resnet"}, {"epochs": -1}, {"bogus": 1}):
        with pytest.raises(ValidationError):
            cls.Params(**bad)
    assert math.isclose(cls.Params(lr=1e-3).lr, 1e-3)
