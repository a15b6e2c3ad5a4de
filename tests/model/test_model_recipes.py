"""Recipe options: what each one promises, at a tiny size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facesynth.model.generator import build_generator, generator_arch
from facesynth.model.generator import UNetGenerator
from facesynth.model.losses import face_box_colour, face_ssim_loss, target_face, weighted_l1
from facesynth.model.recipes import RECIPES, recipe_config
from facesynth.model.train import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_original_recipe_is_the_plain_config_and_names_are_checked():
    plain, orig = TrainConfig(), recipe_config("original")
    for key in RECIPES["original"]:
        assert getattr(orig, key) == getattr(plain, key), key
    fs = recipe_config("facesynth", ngf=8, ema=None)
    assert fs.recipe == "facesynth" and fs.ngf == 8 and fs.ema == RECIPES["facesynth"]["ema"]
    assert recipe_config("facesynth", upsample="transpose").upsample == "transpose"
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_config("fancy")
    with pytest.raises(ValueError, match="unknown training settings"):
        recipe_config("original", bogus=1)


def test_instance_norm_generator_computes_the_same_in_training_and_export():
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    torch.manual_seed(0)
    inst = UNetGenerator(32, 8, dropout=0.0, upsample="resize", norm="instance")
    with torch.no_grad():
        assert torch.allclose(inst.train()(x), inst.eval()(x), atol=1e-6)
    torch.manual_seed(0)
    bn = UNetGenerator(32, 8, dropout=0.0)
    with torch.no_grad():  # BatchNorm: batch statistics in training, running averages in export
        assert not torch.allclose(bn.train()(x), bn.eval()(x), atol=1e-3)


def test_generator_options_round_trip_through_the_arch_dict():
    g = UNetGenerator(32, 6, dropout=0.0, upsample="resize", norm="none")
    arch = generator_arch(g)
    assert arch["upsample"] == "resize" and arch["norm"] == "none" and arch["dropout"] == 0.0
    copy = build_generator(arch, "test")
    copy.load_state_dict(g.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(copy.eval()(x), g.eval()(x))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    with pytest.raises(ValueError):
        UNetGenerator(32, 8, upsample="pixelshuffle")


def test_weighted_l1_and_shift():
    fake, target = torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4)
    target[:, 3] = 1.0                      # depth off by 1, colour exact
    assert float(weighted_l1(fake, target, 1.0)) == pytest.approx(float(torch.nn.functional.l1_loss(fake, target)))
    assert float(weighted_l1(fake, target, 2.0)) == pytest.approx(0.5)
    from facesynth.model.augment import affine

    x = torch.arange(64.0).view(1, 1, 8, 8)
    moved, = affine([x], torch.ones(1), torch.zeros(1), torch.tensor([[2.0, -1.0]]), [-1.0])
    want = np.full((8, 8), -1.0, np.float32)  # 2 px right, 1 px up, the new border background
    want[0:7, 2:8] = x[0, 0].numpy()[1:8, 0:6]
    assert np.array_equal(moved[0, 0].numpy(), want)


def test_warmup_trains_only_the_generator_and_ema_is_what_is_shipped(tmp_path):
    cfg = recipe_config("facesynth", size=32, ngf=4, ndf=4, lpips=False, device="cpu", warmup_steps=2,
                        ema=0.9, batch_size=2)
    tr = Trainer(cfg, tmp_path)
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    for _ in range(2):
        parts = tr.train_step(x, y)
        tr.step += 1
    assert "g_gan" not in parts and all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    parts = tr.train_step(x, y)
    assert "g_gan" in parts and not all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    assert tr.G_export is tr.G_ema
    g, e = dict(tr.G.named_parameters()), dict(tr.G_ema.named_parameters())
    assert any(not torch.equal(g[k], e[k]) for k in g)


def test_resume_with_another_recipe_is_refused_clearly(tmp_path):
    from facesynth.errors import ModelFileError

    first = Trainer(recipe_config("facesynth", size=32, ngf=4, ndf=4, lpips=False, device="cpu"), tmp_path)
    first.save(keep=True)
    other = Trainer(recipe_config("original", size=32, ngf=4, ndf=4, lpips=False, device="cpu"), tmp_path)
    with pytest.raises(ModelFileError, match="upsample: checkpoint resize vs now transpose"):
        other.resume()


def _smooth_pair(seed: int, size: int = 48):
    """A target RGBD with an elliptic face (background -1) and a noisy prediction of it."""
    import cv2
    import numpy as np

    g = np.random.default_rng(seed)
    colour = np.stack([cv2.GaussianBlur(g.random((size, size)), (0, 0), 2.0) for _ in range(3)])
    colour = (colour - colour.min()) / (colour.max() - colour.min())        # [0, 1]
    yy, xx = np.mgrid[:size, :size]
    face = ((yy - size / 2) / (size * 0.38)) ** 2 + ((xx - size / 2) / (size * 0.3)) ** 2 < 1
    target = np.concatenate([colour * 2 - 1, np.full((1, size, size), 0.3)]).astype(np.float32)
    target[:, ~face] = -1.0
    fake = np.clip(target + g.normal(0, 0.2, target.shape), -1, 1).astype(np.float32)
    return torch.from_numpy(fake)[None], torch.from_numpy(target)[None], face


def test_face_ssim_loss_is_one_minus_scikit_image_ssim_over_the_face():
    import numpy as np
    from skimage.metrics import structural_similarity

    fake, target, face = _smooth_pair(0)
    a, b = ((t[0, :3].permute(1, 2, 0).numpy() + 1) / 2 for t in (fake, target))
    a = np.where(face[..., None], a, 0.0)            # the background made equal (-1 -> 0) in both
    _, smap = structural_similarity(a, b, full=True, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, channel_axis=2)
    inner = np.zeros_like(face)
    inner[5:-5, 5:-5] = face[5:-5, 5:-5]              # the windows that lie inside the image
    want = 1.0 - smap.mean(2)[inner].mean()
    fake.requires_grad_(True)
    loss = face_ssim_loss(fake, target, target_face(target))
    assert float(loss) == pytest.approx(want, abs=1e-4) and 0.2 < want < 0.9
    loss.backward()
    bg = torch.from_numpy(~face)
    assert float(fake.grad[0, :3][:, bg].abs().max()) == 0.0         # no pull on the background
    assert float(fake.grad[0, :3][:, ~bg].abs().mean()) > 0 and float(fake.grad[0, 3].abs().max()) == 0.0
    other = fake.detach().clone()
    other[:, :3][:, :, bg] = 0.7                                     # another predicted background
    assert float(face_ssim_loss(other, target, target_face(target))) == pytest.approx(float(loss), abs=1e-6)
    assert float(face_ssim_loss(target, target, target_face(target))) == pytest.approx(0.0, abs=1e-5)


def test_lpips_face_box_is_the_union_of_the_faces_with_equal_background():
    import numpy as np

    fake, target, face = _smooth_pair(1, size=128)
    shifted = torch.roll(target, shifts=(3, -5), dims=(2, 3))        # a second face elsewhere
    fakes, targets = torch.cat([fake, fake]), torch.cat([target, shifted])
    a, b = face_box_colour(fakes, targets, target_face(targets))
    union = face | np.roll(face, (3, -5), axis=(0, 1))
    ys, xs = np.nonzero(union)
    assert a.shape == b.shape == (2, 3, ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    outside = ~torch.from_numpy(np.roll(face, (3, -5), axis=(0, 1))[crop])
    assert bool((a[1][:, outside] == -1).all()) and bool((b[1][:, outside] == -1).all())
    assert torch.equal(b[0], target[0, :3][(slice(None), *crop)])
    small_t = target[:, :, ::4, ::4]
    small_a, _ = face_box_colour(fake[:, :, ::4, ::4], small_t, target_face(small_t))  # a 32 px crop
    assert min(small_a.shape[-2:]) == 64                              # upsampled as the metric does


def test_ssim_and_face_lpips_terms_train_with_the_generator(tmp_path):
    cfg = recipe_config("facesynth", size=32, ngf=4, ndf=4, device="cpu", warmup_steps=10,
                        ssim_weight=20.0, lpips_face=True, batch_size=2)
    tr = Trainer(cfg, tmp_path)
    fake, target, _ = _smooth_pair(2, size=32)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.cat([target, target])
    first = tr.train_step(x, y)
    for _ in range(5):
        last = tr.train_step(x, y)
    assert {"g_l1", "g_ssim", "g_lpips"} <= set(first)
    assert last["g_ssim"] < first["g_ssim"] and 0 < first["g_ssim"] <= 20.0 * 2


def test_small_sets_get_augmentation_unless_the_graph_chooses():
    """28 frames (the TrueDepth sequence's training set) are augmented under the default recipe;
    the main job's 240 are not, nor is `recipe: original`, nor a graph that set augment_* itself."""
    from facesynth.model.recipes import recipe_config, small_set_settings
    from facesynth.runtime.console_text import train_start_line

    small = small_set_settings("facesynth", 28, {})
    cfg = recipe_config("facesynth", **small)
    assert cfg.augment_scale > 0 and cfg.augment_rotate_deg > 0 and cfg.augment_px > 0
    assert small_set_settings("facesynth", 240, {}) == {}
    assert small_set_settings("original", 28, {}) == {}
    assert small_set_settings("facesynth", 28, {"augment_px": 0}) == {}
    line = train_start_line({"train_frames": 28, "eval_frames": 6, "epochs": 9, "small_set_augment": small})
    assert line.startswith("training on 28 frames (6 held out), 9 epochs; a small set: augmented (zoom +-"), line
