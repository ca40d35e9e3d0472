"""The training loop of ``pathgan train-latent``: D every step, G every ``n_critic`` steps.

Exact resume: every source of randomness after initialisation (z, style mixing, noise maps,
DiffAugment, gradient-penalty interpolation) is drawn from an explicit generator whose state is
checkpointed, and the data (order and augmentation) is a function of (seed, epoch, position) that
``pathgan.data.make_loader`` reproduces whatever the number of workers. So on CPU,
2 steps + resume + 2 steps gives bit-identical weights to 4 steps in one go (tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pathgan import __version__
from pathgan.config import ModelConfig, TrainConfig
from pathgan.device import resolve_precision, select_device
from pathgan.errors import ConfigError
from pathgan.runs import latest_checkpoint, save_grid
from pathgan.train._checkpoint import load_checkpoint, save_checkpoint
from pathgan.train._drive import Cadence, drive
from pathgan.train._guards import TrainingDivergedError, finite, grad_norm
from pathgan.train._run import StatsWriter

__all__ = ["Trainer", "TrainingDivergedError", "select_device"]  # select_device: pathgan.device, kept here for old imports

SAMPLE_SEED = 20_200_302  # fixed latents for the sample grids, the same in every run
STATS_SEED = 20_261_202  # latents for re-estimating the averaged generator's batch-norm statistics


class Trainer:
    """Owns models, optimisers, EMA and RNG state for one run; ``run()`` trains to ``cfg.steps``.

    Parameters
    ----------
    cfg, model_cfg : resolved configurations.
    dataset : the training patches (a :class:`pathgan.data.PatchDataset`); read through
        :func:`pathgan.data.make_loader` with ``cfg.num_workers`` worker processes. ``None`` when the
        caller feeds :meth:`train_step` itself (a benchmark with its patches in memory).
    run_dir : the run directory (created by the caller).
    device : torch device.
    provenance : JSON-able facts about the data (store schema, MPP, patch size, fingerprint).
    rank, world : for multi-process (torchrun) training; only rank 0 writes files.
    """

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, *, dataset: Any,
                 run_dir: Path, device: torch.device, provenance: dict[str, Any],
                 rank: int = 0, world: int = 1, progress: bool = True) -> None:
        from pathgan.models import build
        from pathgan.train.ema import EMA

        self.cfg, self.model_cfg = cfg, model_cfg
        per_rank, group = cfg.batch_size // world, model_cfg.mbstd_group
        if group and per_rank > group and per_rank % group:
            raise ConfigError(f"batch_size={cfg.batch_size} ({per_rank} per process) must be a multiple of the "
                              f"discriminator's minibatch-std group size {group} (model {model_cfg.name})")

        self.run_dir, self.device = run_dir, device
        self.rank, self.world, self.progress = rank, world, progress
        self.provenance = provenance
        torch.manual_seed(cfg.seed)  # initialisation only; training draws from self.rng
        self.model = build(model_cfg).to(device)
        if world > 1:
            self._broadcast_parameters()
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.g_modules = nn.ModuleDict({"mapping": self.model.mapping, "generator": self.model.generator})
        self.g_params = [p for p in self.g_modules.parameters() if p.requires_grad]
        self.d_params = [p for p in self.model.discriminator.parameters() if p.requires_grad]
        betas = (float(cfg.beta1), float(cfg.beta2))  # the reference silently ran with beta2 = 0.999; we honour it
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr_d, betas=betas)
        self.ema = EMA(self.g_modules)
        precision = resolve_precision(cfg.precision, device)
        self.precision = precision
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError(f"precision=fp16 needs a CUDA device, not {device.type}; use bf16 (CPU and recent "
                              "GPUs) or fp32")
        # bf16 autocast runs on CPU too (oneDNN's AVX-512 BF16 kernels); fp16 needs CUDA's GradScaler.
        use_amp = precision != "fp32" and device.type in ("cuda", "cpu")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        self.use_amp = use_amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and precision == "fp16")
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(cfg.seed + 1_000_003 * rank)
        self.step = 0
        self.dataset = dataset
        self._loader: Any = None
        self.epoch, self.position = 0, 0  # data position: batches consumed in the current epoch
        self.stats = StatsWriter(run_dir / "stats.jsonl")
        self._g_forward: Callable[..., torch.Tensor] = self.model.generator
        self._d_forward: Callable[..., torch.Tensor] = self.model.discriminator
        if cfg.compile:
            self._g_forward = torch.compile(self.model.generator)  # type: ignore[assignment]
            self._d_forward = torch.compile(self.model.discriminator)  # type: ignore[assignment]
        self._last: dict[str, float] = {}
        self._ema_stats_step = -1  # step at which refresh_ema_stats last ran (save and samples share it)

    @property
    def loader(self) -> Any:
        """The DataLoader over ``dataset`` (built on first use: :meth:`train_step` alone needs none)."""
        if self._loader is None:
            from pathgan.data import make_loader

            if self.dataset is None:
                raise ConfigError("this Trainer has no dataset; pass one to use run(), or call train_step() with batches")
            cfg = self.cfg
            self._loader = make_loader(self.dataset, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                       num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda",
                                       rank=self.rank, world=self.world)
        return self._loader

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "models": {k: getattr(self.model, k).state_dict() for k in ("mapping", "generator", "discriminator")},
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {"train": self.rng.get_state(), "torch_cpu": torch.get_rng_state()},
            "config": {"train": asdict(self.cfg), "model": asdict(self.model_cfg)},
            "provenance": {**self.provenance, "pathgan_version": __version__},
        }

    def load_state(self, ckpt: dict[str, Any]) -> None:
        for k in ("mapping", "generator", "discriminator"):
            getattr(self.model, k).load_state_dict(ckpt["models"][k])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.rng.set_state(ckpt["rng"]["train"])
        torch.set_rng_state(ckpt["rng"]["torch_cpu"])
        self.step = int(ckpt["step"])
        self.epoch, self.position = int(ckpt["epoch"]), int(ckpt["position"])

    def resume(self) -> Path | None:
        """Load the latest checkpoint of the run directory; returns its path.

        A run killed before its first checkpoint has nothing to load: it starts again from step 0
        with the saved configuration (its logged rows are dropped), which is what an uninterrupted
        run would have done; returns None then.
        """
        path = latest_checkpoint(self.run_dir)
        if path is not None:
            self.load_state(load_checkpoint(path, map_location=self.device))
        if self.rank == 0:
            self.stats.truncate_after(self.step)
        return path

    @torch.no_grad()
    def refresh_ema_stats(self) -> bool:
        """Re-estimate the batch-norm statistics of the averaged generator on 1,024 of its own samples
        (fixed latents; the training RNG is untouched). The live generator's running averages belong
        to other weights. A no-op (False) for generators without batch norm, or when already done at
        this step."""
        from pathgan.models import broadcast_w, map_any_class
        from pathgan.models._layers import refresh_batch_stats

        if self._ema_stats_step == self.step:  # the averaged weights only change in train_step
            return False
        self._ema_stats_step = self.step
        mapping, gen = self.ema.module["mapping"], self.ema.module["generator"]
        g = torch.Generator(device=self.device)
        g.manual_seed(STATS_SEED)

        def forward(n: int) -> None:
            z = torch.randn(n, self.model_cfg.z_dim, generator=g, device=self.device)
            gen(broadcast_w(map_any_class(mapping, z, g), int(gen.n_slots)), generator=g)  # type: ignore[arg-type]

        return refresh_batch_stats(forward, gen)

    def save(self) -> Path:
        self.refresh_ema_stats()
        path = self.run_dir / "checkpoints" / f"step-{self.step:07d}.pt"
        if self.rank == 0:
            save_checkpoint(path, self.state())
        return path

    # -- one step ------------------------------------------------------------------------------
    def _broadcast_parameters(self) -> None:
        import torch.distributed as dist

        for t in list(self.model.parameters()) + list(self.model.buffers()):
            dist.broadcast(t.data, src=0)

    def _sync_grads(self, params: list[nn.Parameter]) -> None:
        # Manual all-reduce instead of DDP: the gradient penalty needs double backward, which DDP's
        # hooks do not support, and the G/D alternation would confuse its unused-parameter logic.
        if self.world == 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def _latents(self, n: int, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Style-mixed ws [N, n_slots, w_dim] (both w of a mixed sample share the class ``c``)."""
        from pathgan.models import mix_styles

        zdim = self.model_cfg.z_dim
        z1 = torch.randn(n, zdim, generator=self.rng, device=self.device)
        z2 = torch.randn(n, zdim, generator=self.rng, device=self.device)
        w1, w2 = self.model.mapping(z1, c), self.model.mapping(z2, c)
        ws, mixed = mix_styles(w1, w2, self.model.generator.n_slots, self.model_cfg.style_mixing_p, generator=self.rng)
        return ws, mixed

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        from pathgan.train.augment import diff_augment

        return diff_augment(x, self.cfg.diffaugment, generator=self.rng) if self.cfg.diffaugment else x

    def _check(self, name: str, value: torch.Tensor) -> float:
        return finite(name, value, step=self.step, run_dir=self.run_dir,
                      hint="resume from it with a lower learning rate (--set lr_d=..., lr_g=...) or another loss")

    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """One discriminator step, plus a generator step every ``n_critic`` steps.

        A conditional model needs ``labels`` (int64 [N], the real images' classes); the fakes of
        the step get the same classes, so they follow the data's class frequencies.
        """
        from pathgan.train.losses import (
            d_loss,
            g_loss,
            gradient_penalty,
            orthogonal_regularizer,
            r1_penalty,
        )

        cfg = self.cfg
        n = real.shape[0]
        real = real.to(self.device, non_blocking=True)
        c = labels.to(self.device, non_blocking=True) if labels is not None else None
        if cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)
        # ---- discriminator ----
        with autocast:
            with torch.no_grad():
                ws, _ = self._latents(n, c)
                fake = self._g_forward(ws, generator=self.rng)
            real_aug, fake_aug = self._augment(real), self._augment(fake.float())
            logits_r, logits_f = self._d_forward(real_aug, c), self._d_forward(fake_aug, c)
            loss_d = d_loss(cfg.loss, logits_r.float(), logits_f.float())
        gp = torch.zeros((), device=self.device)
        if cfg.gp_weight > 0 and self.step % cfg.penalty_every == 0:
            d_of_c = self._d_forward if c is None else (lambda x: self._d_forward(x, c))
            with autocast:
                if cfg.penalty == "r1":
                    gp = r1_penalty(d_of_c, real_aug.detach())
                else:
                    gp = gradient_penalty(d_of_c, real_aug.detach().float(), fake_aug.detach().float(),
                                          generator=self.rng)
            self._last["gp"] = float(gp.detach())
        # Lazy regularisation: a penalty taken every k-th step weighs k times as much.
        total_d = loss_d + cfg.gp_weight * cfg.penalty_every * gp
        if cfg.ortho_weight > 0:
            total_d = total_d + cfg.ortho_weight * orthogonal_regularizer(self.model.discriminator)
        self._check("discriminator loss", total_d)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(total_d).backward()
        self._sync_grads(self.d_params)
        self.scaler.unscale_(self.opt_d)
        out = {"loss_d": float(loss_d.detach()), "grad_norm_d": grad_norm(self.d_params)}
        self.scaler.step(self.opt_d)
        # ---- generator ----
        if self.step % cfg.n_critic == 0:
            with autocast:
                ws, _ = self._latents(n, c)
                fake = self._g_forward(ws, generator=self.rng)
                logits_f = self._d_forward(self._augment(fake.float()), c)
                if cfg.loss == "relativistic":  # the only generator loss that reads D on real images
                    with torch.no_grad():
                        logits_r = self._d_forward(self._augment(real), c)
                else:
                    logits_r = logits_f.detach()  # unused by g_loss; keeps its signature
                loss_g = g_loss(cfg.loss, logits_r.float(), logits_f.float())
            total_g = loss_g
            if cfg.ortho_weight > 0:
                total_g = total_g + cfg.ortho_weight * orthogonal_regularizer(self.g_modules)
            self._check("generator loss", total_g)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(total_g).backward()
            self._sync_grads(self.g_params)
            self.scaler.unscale_(self.opt_g)
            out.update(loss_g=float(loss_g.detach()), grad_norm_g=grad_norm(self.g_params))
            self.scaler.step(self.opt_g)
            self.ema.update(self.g_modules, self.ema_beta(n * self.world))
        self.scaler.update()
        # D parameters get no gradient from the G step's loss through backward into opt_g; clear
        # the D grads it left so they never leak into the next D step.
        self.opt_d.zero_grad(set_to_none=True)
        self.step += 1
        self._last.update(out)
        return out

    def ema_beta(self, batch_images: int) -> float:
        """Decay of this step's EMA update: ``ema_decay``, or with ``ema_kimg`` a half-life of that many
        thousand images (ramped up to ``ema_rampup`` x the images seen so far)."""
        cfg = self.cfg
        if cfg.ema_kimg <= 0:
            return cfg.ema_decay
        half_life = cfg.ema_kimg * 1000.0
        if cfg.ema_rampup > 0:
            half_life = min(half_life, (self.step + 1) * cfg.batch_size * cfg.ema_rampup)
        return float(0.5 ** (batch_images / max(half_life, 1e-8)))

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_images(self, n: int) -> np.ndarray:
        """``uint8 [n, H, W, 3]`` from the EMA generator at fixed latents and noise (a conditional
        model cycles through its classes: sample i has class ``i % n_classes``)."""
        from pathgan.data._transforms import to_uint8_nhwc
        from pathgan.models import render

        g = torch.Generator(device=self.device)
        g.manual_seed(SAMPLE_SEED)
        mapping, gen = self.ema.module["mapping"], self.ema.module["generator"]
        z = torch.randn(n, self.model_cfg.z_dim, generator=g, device=self.device)
        k = self.model_cfg.n_classes
        c = torch.arange(n, device=self.device) % k if k else None
        return to_uint8_nhwc(render(gen, mapping(z, c), rng=g))

    def write_samples(self) -> Path:
        self.refresh_ema_stats()
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        images = self.sample_images(self.cfg.n_samples)
        if self.rank == 0:
            save_grid(path, images, ncols=math.ceil(math.sqrt(len(images))))
        return path

    # -- the loop ------------------------------------------------------------------------------
    def _agree(self, flag: bool) -> bool:
        """``flag`` on every process (any rank's True wins), so all ranks stop at the same step."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(images, labels or None) forever, continuing from (epoch, position) and keeping them current."""
        per_epoch = len(self.loader.sampler)  # type: ignore[arg-type]
        self.loader.sampler.set_epoch(self.epoch, start=self.position)  # type: ignore[attr-defined]
        while True:
            for batch in self.loader:
                self.position += 1
                if self.position == per_epoch:
                    self.epoch, self.position = self.epoch + 1, 0
                yield batch["image"], batch.get("label")

    def run(self, steps: int | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) discriminator steps have been taken, or until
        ``cfg.time_budget_min`` minutes have passed in this call, whichever comes first; either way
        the last step gets samples and a checkpoint. ``self.stopped_by`` says which ended it."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        target = cfg.steps if steps is None else steps
        budget_s = cfg.time_budget_min * 60.0
        quiet = not self.progress or self.rank != 0
        if budget_s > 0:  # a time budget: the bar counts seconds of it, the postfix the steps
            bar = tqdm(total=round(budget_s), desc=f"train ({cfg.time_budget_min:g} min)", unit="s", disable=quiet,
                       bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
        else:
            bar = tqdm(total=target, initial=self.step, desc="train", unit="step", disable=quiet)
        t_start = time.perf_counter()
        window = {"t": t_start, "imgs": 0}
        batch_iter = self._batches()
        if self.step == 0 and self.rank == 0:
            self.write_samples()

        def step_once() -> int:
            real, labels = next(batch_iter)
            if self.model_cfg.n_classes and labels is None:
                raise ConfigError(f"model {self.model_cfg.name} is class-conditional but the dataset has no labels")
            self.train_step(real, labels)
            window["imgs"] += real.shape[0] * self.world
            return self.step

        def out_of_time() -> bool:
            elapsed = time.perf_counter() - t_start
            bar.update(min(elapsed, budget_s) - bar.n if budget_s > 0 else 1)
            return budget_s > 0 and self._agree(elapsed >= budget_s)

        def log() -> None:
            now = time.perf_counter()
            dt = now - window["t"]
            row = {"step": self.step, "kimg": round(self.step * cfg.batch_size / 1000, 3),
                   **{k: round(v, 6) for k, v in self._last.items()},
                   "d_img_per_s": round(window["imgs"] / dt, 2) if dt > 0 else None,
                   "train_min": round((now - t_start) / 60, 3), "time": round(time.time(), 1)}
            if self.rank == 0:
                self.stats.write(row)
            bar.set_postfix(step=self.step, loss_d=f"{self._last.get('loss_d', 0):.3f}",
                            loss_g=f"{self._last.get('loss_g', 0):.3f}")
            window.update(t=time.perf_counter(), imgs=0)

        self.stopped_by = drive(step_once, step=self.step, target=target, log=log, sample=self.write_samples,
                                save=self.save, out_of_time=out_of_time,
                                cadence=Cadence(cfg.log_every, cfg.checkpoint_every, cfg.sample_every))
        bar.close()
        return dict(self._last)
