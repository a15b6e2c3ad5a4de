"""Checkpoint retention (latest, best by eval, the last K), fallback from a damaged latest.pt,
and a full disk during a save (issue 13, item 10)."""
from __future__ import annotations

import errno
import os

import pytest
import torch

import facesynth.model.checkpoint as ck
from facesynth.errors import ModelFileError, ModelWriteError
from facesynth.model.checkpoint import Checkpoints, load_checkpoint


def _state(epoch: int, maes: list[float]) -> dict:
    history = [{"epoch": i + 1, "eval": {"depth_mae_mm": m}} for i, m in enumerate(maes[:epoch])]
    return {"config": {}, "epoch": epoch, "step": 10 * epoch, "G": {"w": torch.full((4,), float(epoch))},
            "history": history}


def test_keeps_latest_best_and_the_last_k(tmp_path):
    maes = [9.0, 4.0, 6.0, 5.0, 7.0]  # epoch 2 is the best
    cks = Checkpoints(tmp_path, keep_last=2)
    for e in range(1, 6):
        cks.save(_state(e, maes), keep=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt", "step_00000040.pt", "step_00000050.pt"]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["epoch"] == 5
    # latest is the newest epoch file's bytes, in a file of its own (never a hard link)
    assert (tmp_path / "latest.pt").read_bytes() == (tmp_path / "step_00000050.pt").read_bytes()
    assert not os.path.samefile(tmp_path / "latest.pt", tmp_path / "step_00000050.pt")
    assert (tmp_path / "latest.pt").stat().st_nlink == 1 and (tmp_path / "best.pt").stat().st_nlink == 1
    cks.save({**_state(5, maes), "step": 57}, keep=False)  # a stop in the middle of epoch 6
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["step"] == 57
    assert torch.load(tmp_path / "step_00000050.pt", weights_only=True)["step"] == 50  # untouched
    wide = Checkpoints(tmp_path / "k3", keep_last=3)
    for e in range(1, 6):
        wide.save(_state(e, maes), keep=True)
    assert [p.name for p in wide.kept_files()] == ["step_00000030.pt", "step_00000040.pt", "step_00000050.pt"]


def test_epoch_files_of_older_facesynth_count_as_the_oldest_and_are_pruned(tmp_path):
    ck.atomic_torch_save(_state(9, [5.0] * 9), tmp_path / "epoch_0009.pt")  # written before issue 21
    assert load_checkpoint(tmp_path)["epoch"] == 9  # resumable
    cks = Checkpoints(tmp_path, keep_last=2)
    cks.save({**_state(1, [4.0]), "step": 5}, keep=True)
    assert [p.name for p in cks.kept_files()] == ["epoch_0009.pt", "step_00000005.pt"]
    cks.save({**_state(1, [4.0]), "step": 7}, keep=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt", "step_00000005.pt",
                                                          "step_00000007.pt"]


def test_best_is_only_a_state_that_its_evaluation_saw(tmp_path):
    cks = Checkpoints(tmp_path, keep_last=5)
    evaluated = {"config": {}, "epoch": 1, "step": 20, "G": {"w": torch.zeros(2)},
                 "history": [{"step": 10, "eval": {"depth_mae_mm": 6.0}}, {"step": 20, "eval": {"depth_mae_mm": 5.0}}]}
    cks.save(evaluated, keep=True)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["step"] == 20
    cks.save({**evaluated, "step": 30}, keep=True)  # trained on after its best evaluation: not best
    assert torch.load(tmp_path / "best.pt", weights_only=True)["step"] == 20


def test_one_damaged_checkpoint_costs_at_most_one_epoch(tmp_path):
    """latest.pt and epoch_N.pt are independent files: latest torn in place leaves epoch N intact
    (nothing lost); both torn fall back one epoch, to N-1, with a warning per damaged file."""
    from facesynth.model.dataset import TRAIN, load_pairs
    from facesynth.model.toy_data import write_toy_store
    from facesynth.model.train import Trainer, TrainConfig

    torch.set_num_threads(1)
    store = write_toy_store(tmp_path / "s.zarr", n_train=4, n_eval=0, size=32)
    cfg = TrainConfig(size=32, ngf=4, ndf=4, epochs=3, decay_epochs=0, batch_size=4, lpips=False, device="cpu",
                      eval_every_steps=1, checkpoint_every_s=0)  # one step an epoch, each saved
    Trainer(cfg, tmp_path / "run").fit(load_pairs(store, TRAIN))
    d = tmp_path / "run" / "checkpoints"

    def tear(name):  # torn in place, as a crash or a bad disk would leave it
        size = (d / name).stat().st_size
        with open(d / name, "r+b") as fh:
            fh.truncate(size // 2)

    def resume():
        events = []
        again = Trainer(cfg, tmp_path / "run", callback=lambda name, data: events.append((name, data)))
        assert again.resume()
        warned = [os.path.basename(data["file"]) for name, data in events if name == "train.checkpoint_damaged"]
        return again.epoch, warned, {os.path.basename(data["using"]) for name, data in events}

    tear("latest.pt")
    assert resume() == (3, ["latest.pt"], {"step_00000003.pt"})  # the same epoch, from its own file
    tear("step_00000003.pt")
    assert resume() == (2, ["latest.pt", "step_00000003.pt"], {"step_00000002.pt"})  # one epoch back, not more
    for p in d.glob("*.pt"):  # nothing intact at all: a clear error, not a silent epoch 0
        p.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="every checkpoint .* is damaged.*--restart"):
        Trainer(cfg, tmp_path / "run").resume()


def test_full_disk_leaves_no_temporary_file_and_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    cks = Checkpoints(tmp_path, keep_last=2)
    cks.save(_state(1, [5.0, 4.0]), keep=True)
    before = (tmp_path / "latest.pt").read_bytes()
    written = []

    def full_disk(fh, data):
        if sum(written) > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return fh.write(data)

    monkeypatch.setattr(ck, "_write", full_disk)
    big = {**_state(2, [5.0, 4.0]), "G": {"w": torch.zeros(100_000)}}
    with pytest.raises(ModelWriteError, match="disk is full.*previous checkpoint is intact"):
        cks.save(big, keep=True)
    assert sum(written) > 0  # the save did reach the disk before it filled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt", "step_00000010.pt"]
    assert (tmp_path / "latest.pt").read_bytes() == before
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_a_checkpoint_of_another_architecture_is_refused_by_name():
    from facesynth.model.checkpoint import check_compatible

    base = {"size": 64, "ngf": 8, "ndf": 8, "n_layers_d": 4, "num_d": 3}
    check_compatible(base, {**base, "norm": "batch"}, "old.pt")  # from before the option: BatchNorm
    with pytest.raises(ModelFileError, match="norm: checkpoint batch vs now instance"):
        check_compatible(base, {**base, "norm": "instance"}, "old.pt")
    with pytest.raises(ModelFileError, match="norm: checkpoint batch vs now instance.*out_dir.*--restart"):
        check_compatible({**base, "norm": "batch"}, {**base, "norm": "instance"}, "c.pt")
    with pytest.raises(ModelFileError, match="ngf: checkpoint 8 vs now 16"):
        check_compatible(base, {**base, "ngf": 16}, "c.pt")
