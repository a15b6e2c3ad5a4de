"""Training step and loop of the pix2pix / pix2pixHD recipe (DESIGN.md section 2).

Adam lr 2e-4 betas (0.5, 0.999); `epochs` at the full rate then `decay_epochs` of linear
decay to zero (or `steps` + `decay_steps`, counted in steps: model/schedule.py); eval metrics and
a preview PNG every `eval_every_steps` steps or `eval_every_s` seconds and at the end, sent
through `callback(name, data)` as `train.step` / `train.epoch` events (the name kept from when
they came once an epoch); a checkpoint at the first evaluation after `checkpoint_every_s`, at
the end and when stopped, from which a rerun continues to the same final step. Runs on a GPU when
there is one; bf16 autocast and channels_last are used where they were measured faster
(see benchmarks/model.py: on GPUs; on this CPU both were slower, so they stay off there).

Options beyond the original (all off by default = the original recipe; facesynth/model/recipes.py
names the measured default): generator `upsample` / `norm` / `dropout`, an EMA of the
generator's weights (`ema` decay; evaluation, previews and export use it), `warmup_steps` of
L1 + LPIPS only before the GAN terms join, `depth_weight` on the depth channel's L1, and
`augment_px` random shifts of each batch, `augment_scale` / `augment_rotate_deg` / `augment_jitter`
(model/augment.py) and `detail_weight` on the eyes and mouth.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from facesynth.errors import MissingDependencyError
from facesynth.model.augment import augment_pair, colour_jitter
from facesynth.model.checkpoint import Checkpoints, check_compatible
from facesynth.model.dataset import PairData
from facesynth.model.discriminator import MultiscaleDiscriminator
from facesynth.model.generator import UNetGenerator, apply_background_mask, generator_arch
from facesynth.model.losses import LossWeights, discriminator_loss, generator_loss, reconstruction_loss
from facesynth.model.metrics import evaluate, mean_image_baseline
from facesynth.model.preview import write_preview
from facesynth.model.schedule import Cadence, Plan, lr_factor, plan

Callback = Callable[[str, dict], None]


@dataclass
class TrainConfig:
    size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 4
    num_d: int = 3
    epochs: int = 30
    decay_epochs: int = 70
    steps: int = 0                # > 0: the budget in steps (then decay_steps), not epochs
    decay_steps: int = 0
    eval_every_steps: int = 0     # evaluate + preview every N steps (0 = off) ...
    eval_every_s: float = 60.0    # ... or every N seconds of training, whichever comes first
    checkpoint_every_s: float = 300.0  # a checkpoint at the first evaluation after this long
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    lambda_feat: float = 10.0
    lambda_lpips: float = 10.0
    lpips: bool = True
    lpips_net: str = "alexnet"
    device: str = "auto"          # auto | cpu | cuda
    amp: str = "auto"             # auto | bf16 | off
    channels_last: str = "auto"   # auto | on | off
    seed: int = 0
    max_minutes: float | None = None
    log_every_s: float = 2.0
    preview_count: int = 4
    recipe: str = "original"
    upsample: str = "transpose"
    norm: str = "batch"
    dropout: float = 0.5
    ema: float = 0.0              # decay of the generator weight average; 0 = off (the original)
    warmup_steps: int = 0         # steps of L1 + LPIPS only (no D, no GAN / feature matching)
    depth_weight: float = 1.0     # weight of the depth channel's L1 next to each colour channel
    augment_px: int = 0           # random shift of drawing and target by up to this many pixels, per sample
    augment_scale: float = 0.0    # random zoom of drawing and target by 1 +- this, per sample
    augment_rotate_deg: float = 0.0  # random rotation of both by up to this many degrees, per sample
    augment_jitter: float = 0.0   # random brightness/contrast of the target's colour by up to this
    augment_until: float = 1.0    # share of the run's steps that are augmented (then the pairs as captured)
    detail_weight: float = 0.0    # extra L1 weight on the eyes and mouth (x (1 + this) there)
    ssim_weight: float = 0.0      # weight of a (1 - face SSIM) colour loss next to L1; 0 = off
    lpips_face: bool = False      # LPIPS loss on the faces' box with equal background, not the crop
    extra: dict = field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.decay_epochs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError("device 'cuda' asked for but torch sees no CUDA GPU; "
                                     "use device: auto or cpu, or run where Ray assigns a GPU")
    return torch.device(name)


def use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.amp == "bf16":
        return True
    return cfg.amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


class Trainer:
    """Owns G, D, their optimisers and the run directory (checkpoints/, previews/)."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, callback: Callback | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.callback = callback or (lambda name, data: None)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its kernels
        torch.manual_seed(cfg.seed)
        self.G = UNetGenerator(cfg.size, cfg.ngf, dropout=cfg.dropout, upsample=cfg.upsample,
                               norm=cfg.norm).to(self.device)
        self.D = MultiscaleDiscriminator(5, cfg.ndf, cfg.n_layers_d, cfg.num_d).to(self.device)
        self.amp = use_amp(cfg, self.device)
        self.cl = use_channels_last(cfg, self.device)
        if self.cl:
            self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        self.lpips = None
        if cfg.lpips and cfg.lambda_lpips > 0:
            from facesynth.model.lpips import LPIPS
            self.lpips = LPIPS(cfg.lpips_net).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema > 0 else None
        self.weights = LossWeights(cfg.lambda_l1, cfg.lambda_feat, cfg.lambda_lpips, depth=cfg.depth_weight,
                                   ssim=cfg.ssim_weight, lpips_face=cfg.lpips_face, detail=cfg.detail_weight)
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        self.epoch, self.step, self.epoch_step = 0, 0, 0  # completed epochs, global step, step in epoch
        self._total_steps = 1 << 62  # the plan's last step, set by fit(); train_step alone: augmented throughout
        self.history: list[dict] = []
        self._baseline: dict | None = None
        self._last_checkpoint: Path | None = None  # named in train.epoch events
        self.meta: dict = {}  # dataset normalisation etc., kept in checkpoints for export
        self.checkpoints = Checkpoints(self.run_dir / "checkpoints")  # retention, fallback (checkpoint.py)

    # ---- state ----------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": {k: v for k, v in asdict(self.cfg).items() if k != "extra"},
                "epoch": self.epoch, "step": self.step, "epoch_step": self.epoch_step,
                "G": self.G.state_dict(), "D": self.D.state_dict(),
                **({"G_ema": self.G_ema.state_dict()} if self.G_ema is not None else {}),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "history": self.history, "meta": self.meta, "arch": generator_arch(self.G),
                "rng": torch.get_rng_state(),
                **({"rng_cuda": torch.cuda.get_rng_state()} if self.device.type == "cuda" else {})}

    def save(self, keep: bool) -> Path:
        """A checkpoint: kept (a step file, latest, best) or, when stopping, latest.pt alone."""
        return self.checkpoints.save(self.state(), keep)

    def resume(self) -> bool:
        """Continue from the newest intact checkpoint (latest.pt, else an older one) if there is one."""
        st, path, damaged = self.checkpoints.load_latest(map_location=self.device)
        for bad, why in damaged:
            self.callback("train.checkpoint_damaged", {"tally": "skipped", "file": str(bad), "error": why,
                                                       "using": str(path)})
        if st is None:
            return False
        check_compatible(st["config"], asdict(self.cfg), path)
        saved_arch, arch = st.get("arch"), generator_arch(self.G)
        if saved_arch is not None and saved_arch != arch:  # e.g. another recipe than last time
            from facesynth.errors import ModelFileError
            diff = [f"{k}: checkpoint {saved_arch.get(k)} vs now {arch.get(k)}"
                    for k in sorted(set(saved_arch) | set(arch)) if saved_arch.get(k) != arch.get(k)]
            raise ModelFileError(f"checkpoint {path} belongs to a different generator ({'; '.join(diff)}); "
                                 "use the same recipe, another model directory (out_dir) or --restart")
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(st.get("G_ema", st["G"]))
        self.opt_G.load_state_dict(st["opt_G"])
        self.opt_D.load_state_dict(st["opt_D"])
        self.epoch, self.step = int(st["epoch"]), int(st["step"])
        self.epoch_step = int(st.get("epoch_step", 0))
        self.history = list(st.get("history", []))
        self.meta = {**dict(st.get("meta", {})), **self.meta}
        if "rng" in st:  # dropout continues as if never interrupted
            torch.set_rng_state(st["rng"].cpu())
        if "rng_cuda" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng_cuda"].cpu())
        return True

    def _set_lr(self, factor: float) -> float:
        """Learning rate = cfg.lr x `factor` (the plan's schedule, or benchmarks/quality.py's budgets)."""
        lr = self.cfg.lr * factor
        for opt in (self.opt_G, self.opt_D):
            for g in opt.param_groups:
                g["lr"] = lr
        return lr

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ---- one step -------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor, detail: torch.Tensor | None = None) -> dict[str, float]:
        """One pix2pixHD update of G then D on a batch (input, target RGBD, eye/mouth map or
        None); during the warm-up only G, on L1 + LPIPS."""
        cfg = self.cfg
        augment = self.step < cfg.augment_until * self._total_steps
        if augment and (cfg.augment_px > 0 or cfg.augment_scale > 0 or cfg.augment_rotate_deg > 0):
            x, y, detail = augment_pair(x, y, detail, cfg.augment_px, cfg.augment_scale, cfg.augment_rotate_deg)
        if augment and cfg.augment_jitter > 0:
            y = colour_jitter(y, cfg.augment_jitter)
        detail = detail if cfg.detail_weight > 0 else None
        if self.cl:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        self.G.train()
        if self.step < cfg.warmup_steps:
            return self._warmup_step(x, y, detail)
        self.D.train()
        with self._autocast():
            fake = self.G(x)
            real_pair = torch.cat([x, y], 1)
            d_real = self.D(real_pair)
            d_fake_det = self.D(torch.cat([x, fake.detach()], 1))
            self.D.requires_grad_(False)
            d_fake = self.D(torch.cat([x, fake], 1))
            self.D.requires_grad_(True)
            loss_g, parts = generator_loss(d_fake, d_real, fake, y, self.weights, self.lpips, detail)
            loss_d, dparts = discriminator_loss(d_fake_det, d_real)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        self._update_ema()
        return {**parts, **dparts, "g_total": float(loss_g.detach()), "d_total": float(loss_d.detach())}

    def _warmup_step(self, x: torch.Tensor, y: torch.Tensor, detail: torch.Tensor | None) -> dict[str, float]:
        with self._autocast():
            fake = self.G(x)
            loss_g, parts = reconstruction_loss(fake, y, self.weights, self.lpips, detail)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self._update_ema()
        return {**parts, "g_total": float(loss_g.detach())}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """G_ema <- d * G_ema + (1 - d) * G, d ramped up as (1+t)/(10+t) so early steps count."""
        if self.G_ema is None:
            return
        d = min(self.cfg.ema, (1.0 + self.step) / (10.0 + self.step))
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    @property
    def G_export(self) -> UNetGenerator:
        """The generator that is evaluated and shipped: the weight average when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        gen = self.G_export
        gen.eval()
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return gen(x).float()

    # ---- the loop -------------------------------------------------------------------
    def plan(self, n_train: int) -> Plan:
        return plan(self.cfg, n_train)

    def fit(self, train: PairData, eval_data: PairData | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict:
        """Train to the plan's last step (continuing from a checkpoint if resume() found one).

        Returns {"status": "done"|"stopped", "epoch", "step", "eval", "baseline"}.
        """
        cfg = self.cfg
        if len(train) == 0:
            from facesynth.errors import InputDataError
            raise InputDataError("no training pairs: the train split holds no accepted frames")
        train = train.to(self.device)
        eval_data = eval_data.to(self.device) if eval_data is not None and len(eval_data) else None
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes else None
        pl = self.plan(len(train))
        self._total_steps = pl.total_steps
        cadence = Cadence(cfg.eval_every_steps, cfg.eval_every_s, cfg.checkpoint_every_s)
        last = self.history[-1] if self.history else {}
        result: dict = {"eval": last.get("eval", {}), "baseline": last.get("baseline", {})}
        last_log, period = 0.0, _Period(self.step)
        perm_epoch, perm = None, None
        while self.step < pl.total_steps:
            if perm_epoch != self.epoch:  # the epoch's order, from the seed: a resume sees the same
                perm_epoch = self.epoch
                perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100003 + self.epoch))
            lr = self._set_lr(pl.lr_factor(cfg, self.step, self.epoch))
            t = time.perf_counter()
            b = perm[self.epoch_step * cfg.batch_size:(self.epoch_step + 1) * cfg.batch_size]
            x, y = train.batch(b)
            losses = self.train_step(x, y, train.detail_batch(b) if cfg.detail_weight > 0 else None)
            period.train_s += time.perf_counter() - t
            self.step += 1
            self.epoch_step += 1
            if self.epoch_step == pl.steps_per_epoch:
                self.epoch, self.epoch_step = self.epoch + 1, 0
            now = time.monotonic()
            if now - last_log >= cfg.log_every_s or self.step == pl.total_steps:
                last_log = now
                self.callback("train.step", {"epoch": self.epoch + (self.epoch_step > 0), "epochs": pl.total_epochs,
                                             "step": self.epoch_step or pl.steps_per_epoch,
                                             "steps": pl.steps_per_epoch, "global_step": self.step,
                                             "total_steps": pl.total_steps, "lr": lr, "losses": losses})
            if self.step == pl.total_steps:
                break
            if (deadline and now > deadline) or (should_stop and should_stop()):
                self._checkpoint(cadence, keep=False)
                return {"status": "stopped", "epoch": self.epoch, "step": self.step}
            at_eval = cadence.eval_due(self.step)
            if at_eval:
                result = self._evaluate(train, eval_data, period, pl, cadence)
            if cadence.checkpoint_due(at_eval):
                result["checkpoint"] = str(self._checkpoint(cadence, keep=True))
        if period.steps(self.step):  # the end: evaluated and saved unless a rerun of a finished run
            result = self._evaluate(train, eval_data, period, pl, cadence)
            result["checkpoint"] = str(self._checkpoint(cadence, keep=True))
        return {"status": "done", "epoch": self.epoch, "step": self.step, **result}

    def _checkpoint(self, cadence: Cadence, keep: bool) -> Path:
        path = self.save(keep)
        cadence.saved()
        self._last_checkpoint = path
        return path

    def _evaluate(self, train: PairData, eval_data: PairData | None, period: "_Period", pl: Plan,
                  cadence: Cadence) -> dict:
        """Metrics on the held-out frames and a preview, as a history entry and a train.epoch event."""
        t0 = time.perf_counter()
        data = eval_data if eval_data is not None else train
        n = min(self.cfg.preview_count, len(data))
        x, y = data.batch(list(range(n)))
        pred = apply_background_mask(self.predict(x))
        preview = write_preview(self.run_dir / "previews" / f"step_{self.step:08d}.png", x, pred, y)
        metrics, baseline = {}, {}
        if eval_data is not None:
            metrics = evaluate(self.predict, eval_data, self.lpips)
            if self._baseline is None:  # the same every time
                mean = mean_image_baseline(eval_data)
                self._baseline = evaluate(lambda xb: mean.expand(xb.shape[0], -1, -1, -1), eval_data, self.lpips)
            baseline = self._baseline
        steps, seconds = period.steps(self.step), period.train_s
        entry = {"epoch": self.epoch, "step": self.step, "eval": metrics, "baseline": baseline,
                 "epoch_s": seconds, "steps_per_s": steps / max(seconds, 1e-9),
                 "eval_s": time.perf_counter() - t0}
        self.history.append(entry)
        period.restart(self.step)
        cadence.evaluated()
        last = self._last_checkpoint
        self.callback("train.epoch", {"epoch": self.epoch, "epochs": pl.total_epochs, "step": self.step,
                                      "steps": pl.total_steps, "eval": metrics, "baseline": baseline,
                                      "preview": str(preview), "checkpoint": str(last) if last else None,
                                      "epoch_s": round(seconds, 3), "steps_per_s": round(entry["steps_per_s"], 3),
                                      "eval_s": round(entry["eval_s"], 3)})
        return {"eval": metrics, "baseline": baseline, "preview": str(preview)}


class _Period:
    """Training seconds and steps since the last evaluation (bookkeeping excluded)."""

    def __init__(self, step: int):
        self.start, self.train_s = step, 0.0

    def steps(self, step: int) -> int:
        return step - self.start

    def restart(self, step: int) -> None:
        self.start, self.train_s = step, 0.0
