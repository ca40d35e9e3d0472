"""The training loop of ``pathgan train-translate``: CycleGAN (Zhu et al. 2017) between domains A and B.

Each step takes one batch of each domain and makes one generator update (both generators, LSGAN
+ cycle L1 + identity L1) and one discriminator update (both discriminators, on a history pool of
generated images), with the learning rate of :meth:`TranslateConfig.lr_at`.

Exact resume: data order and augmentation are functions of (seed, epoch, position) per domain,
the pools' choices come from one checkpointed generator, the pools themselves are checkpointed,
and the learning rate is a function of the step; so on CPU, 2 steps + resume + 2 steps gives
bit-identical weights to 4 steps in one go (tested).

Images are [N, 3, H, W]: in [0, 1] at the dataset/file boundary, in [-1, 1] inside the networks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pathgan import __version__
from pathgan.config import TranslateConfig
from pathgan.errors import PathganError, ShapeError
from pathgan.runs import latest_checkpoint, save_grid
from pathgan.train._checkpoint import load_checkpoint, save_checkpoint
from pathgan.train._cycle_losses import ImagePool, cycle_loss, gan_d_loss, gan_g_loss, identity_loss
from pathgan.train._drive import Cadence, drive
from pathgan.train._guards import finite, grad_norm
from pathgan.train._run import StatsWriter

__all__ = [
    "CHECKPOINT_KIND",
    "CycleGANTrainer",
    "ImagePool",
    "build_translators",
    "cycle_loss",
    "gan_d_loss",
    "gan_g_loss",
    "identity_loss",
    "translate_images",
]

#: ``kind`` of a CycleGAN checkpoint (a PathologyGAN checkpoint has none).
CHECKPOINT_KIND = "cyclegan"
NETWORKS = ("g_ab", "g_ba", "d_a", "d_b")


def build_translators(cfg: TranslateConfig) -> nn.ModuleDict:
    """``g_ab``, ``g_ba`` (generators A -> B and B -> A) and ``d_a``, ``d_b`` (discriminators of
    each domain), built by name from ``cfg``, initialised N(0, 0.02) from the global torch RNG."""
    from pathgan.models._cyclegan import (
        build_translator_discriminator,
        build_translator_generator,
        init_weights,
    )

    nets = nn.ModuleDict({
        "g_ab": build_translator_generator(cfg.generator, ngf=cfg.ngf, n_blocks=cfg.g_res_blocks),
        "g_ba": build_translator_generator(cfg.generator, ngf=cfg.ngf, n_blocks=cfg.g_res_blocks),
        "d_a": build_translator_discriminator(cfg.discriminator, ndf=cfg.ndf, n_layers=cfg.d_layers),
        "d_b": build_translator_discriminator(cfg.discriminator, ndf=cfg.ndf, n_layers=cfg.d_layers),
    })
    init_weights(nets)
    return nets


@torch.no_grad()
def translate_images(generator: nn.Module, images: Tensor, batch_size: int = 16) -> Tensor:
    """``images`` float [N, 3, H, W] in [0, 1] -> their translations, float [N, 3, H, W] in [0, 1],
    computed in batches on the generator's device and returned on the input's device."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"translate_images expects [N, 3, H, W], got {list(images.shape)}")
    device = next(generator.parameters()).device
    parts = []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size].to(device)
        parts.append(((generator(x * 2 - 1) + 1) / 2).clamp_(0, 1).to(images.device))
    return torch.cat(parts) if parts else images.clone()


class _Stream:
    """Training batches of one domain forever, continuing from (epoch, position)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.epoch, self.position = 0, 0
        self._it: Iterator[Tensor] | None = None

    def _gen(self) -> Iterator[Tensor]:
        per_epoch = len(self.loader.sampler)
        self.loader.sampler.set_epoch(self.epoch, start=self.position)
        while True:
            for batch in self.loader:
                self.position += 1
                if self.position == per_epoch:
                    self.epoch, self.position = self.epoch + 1, 0
                yield batch["image"]

    def next(self) -> Tensor:
        if self._it is None:
            self._it = self._gen()
        return next(self._it)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._it = int(state["epoch"]), int(state["position"]), None


def _evenly(n_items: int, n: int) -> np.ndarray:
    """``min(n, n_items)`` indices spread evenly over ``range(n_items)``."""
    k = min(n, n_items)
    return np.unique(np.linspace(0, n_items - 1, k).round().astype(np.int64))


class CycleGANTrainer:
    """Owns the four networks, two optimisers, two image pools and the RNG of one run.

    Parameters
    ----------
    cfg : resolved configuration.
    data_a, data_b : training patches of each domain (:class:`pathgan.data.PatchDataset` returning
        ``cfg.patch_px`` crops; random crops and dihedral transforms for training).
    eval_a, eval_b : the same stores with centred crops and no augmentation: fixed sample-grid
        images and the final evaluation.
    run_dir : the run directory (made by :meth:`pathgan.runs.RunDir.create`).
    device : torch device.
    provenance : JSON-able facts about both domains' data, saved in every checkpoint.
    """

    def __init__(self, cfg: TranslateConfig, *, data_a: Any, data_b: Any, eval_a: Any, eval_b: Any,
                 run_dir: Path, device: torch.device, provenance: dict[str, Any], progress: bool = True) -> None:
        from pathgan.data import make_loader

        self.cfg, self.run_dir, self.device, self.progress = cfg, Path(run_dir), device, progress
        self.provenance = provenance
        self.eval_a, self.eval_b = eval_a, eval_b
        torch.manual_seed(cfg.seed)  # initialisation only; training draws from self.rng
        self.nets = build_translators(cfg).to(device)
        self.g_params = [p for k in ("g_ab", "g_ba") for p in self.nets[k].parameters()]
        self.d_params = [p for k in ("d_a", "d_b") for p in self.nets[k].parameters()]
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr, betas=betas)
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(cfg.seed)
        self.step = 0
        pin = device.type == "cuda"
        # Different seeds per domain: the two orders must not be the same permutation.
        self.stream_a = _Stream(make_loader(data_a, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                            num_workers=cfg.num_workers, pin_memory=pin))
        self.stream_b = _Stream(make_loader(data_b, cfg.batch_size, shuffle=True, seed=cfg.seed + 1,
                                            num_workers=cfg.num_workers, pin_memory=pin))
        self.stats = StatsWriter(self.run_dir / "stats.jsonl")
        self._last: dict[str, float] = {}

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "kind": CHECKPOINT_KIND,
            "step": self.step,
            "data": {"a": self.stream_a.state(), "b": self.stream_b.state()},
            "models": {k: self.nets[k].state_dict() for k in NETWORKS},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "pools": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
            "rng": {"train": self.rng.get_state(), "torch_cpu": torch.get_rng_state()},
            "config": {"translate": asdict(self.cfg)},
            "provenance": {**self.provenance, "pathgan_version": __version__},
        }

    def load_state(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("kind") != CHECKPOINT_KIND:
            raise PathganError(f"not a CycleGAN checkpoint (kind {ckpt.get('kind')!r}, expected {CHECKPOINT_KIND!r})")
        for k in NETWORKS:
            self.nets[k].load_state_dict(ckpt["models"][k])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.pool_a.load_state_dict(ckpt["pools"]["a"], self.device)
        self.pool_b.load_state_dict(ckpt["pools"]["b"], self.device)
        # RNG states are CPU byte tensors whatever map_location moved them to.
        self.rng.set_state(ckpt["rng"]["train"].cpu())
        torch.set_rng_state(ckpt["rng"]["torch_cpu"].cpu())
        self.step = int(ckpt["step"])
        self.stream_a.load(ckpt["data"]["a"])
        self.stream_b.load(ckpt["data"]["b"])

    def resume(self) -> Path:
        """Load the latest checkpoint of the run directory (and drop later stats rows); returns its path."""
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise PathganError(f"--resume {self.run_dir}: no checkpoint in {self.run_dir / 'checkpoints'} "
                               "(expected checkpoints/step-*.pt written by train-translate)")
        self.load_state(load_checkpoint(path, map_location=self.device))
        self.stats.truncate_after(self.step)
        return path

    def save(self) -> Path:
        path = self.run_dir / "checkpoints" / f"step-{self.step:07d}.pt"
        save_checkpoint(path, self.state())
        return path

    # -- one step ------------------------------------------------------------------------------
    def _check(self, name: str, value: Tensor) -> float:
        return finite(name, value, step=self.step, run_dir=self.run_dir,
                      hint="resume from it (--resume) after lowering lr, or start again with another seed")

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, float]:
        """One generator and one discriminator update on ``real_a``, ``real_b`` [N, 3, H, W] in [0, 1].

        Raises
        ------
        TrainingDivergedError : a loss is NaN or infinite (nothing is updated by that loss).
        """
        cfg, nets = self.cfg, self.nets
        a = real_a.to(self.device, non_blocking=True) * 2 - 1
        b = real_b.to(self.device, non_blocking=True) * 2 - 1
        lr = cfg.lr_at(self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        # ---- generators: D is a fixed critic here ----
        nets["d_a"].requires_grad_(False)
        nets["d_b"].requires_grad_(False)
        fake_b = nets["g_ab"](a)
        rec_a = nets["g_ba"](fake_b)
        fake_a = nets["g_ba"](b)
        rec_b = nets["g_ab"](fake_a)
        gan_ab = gan_g_loss(cfg.gan_loss, nets["d_b"](fake_b))
        gan_ba = gan_g_loss(cfg.gan_loss, nets["d_a"](fake_a))
        cyc_a, cyc_b = cycle_loss(rec_a, a), cycle_loss(rec_b, b)
        total_g = gan_ab + gan_ba + cfg.lambda_cycle * (cyc_a + cyc_b)
        out = {"lr": lr, "loss_g_ab": float(gan_ab.detach()), "loss_g_ba": float(gan_ba.detach()),
               "loss_cycle_a": float(cyc_a.detach()), "loss_cycle_b": float(cyc_b.detach())}
        if cfg.lambda_identity > 0:
            idt_b = identity_loss(nets["g_ab"](b), b)  # G_AB should leave B images as they are
            idt_a = identity_loss(nets["g_ba"](a), a)
            total_g = total_g + cfg.lambda_cycle * cfg.lambda_identity * (idt_a + idt_b)
            out.update(loss_identity_a=float(idt_a.detach()), loss_identity_b=float(idt_b.detach()))
        out["loss_g"] = self._check("generator loss", total_g)
        self.opt_g.zero_grad(set_to_none=True)
        total_g.backward()
        out["grad_norm_g"] = grad_norm(self.g_params)
        self.opt_g.step()
        # ---- discriminators: real vs a mix of new and pooled fakes ----
        nets["d_a"].requires_grad_(True)
        nets["d_b"].requires_grad_(True)
        pooled_b = self.pool_b.query(fake_b, generator=self.rng)
        pooled_a = self.pool_a.query(fake_a, generator=self.rng)
        loss_d_b = gan_d_loss(cfg.gan_loss, nets["d_b"](b), nets["d_b"](pooled_b))
        loss_d_a = gan_d_loss(cfg.gan_loss, nets["d_a"](a), nets["d_a"](pooled_a))
        total_d = loss_d_a + loss_d_b
        self._check("discriminator loss", total_d)
        self.opt_d.zero_grad(set_to_none=True)
        total_d.backward()
        out.update(loss_d_a=float(loss_d_a.detach()), loss_d_b=float(loss_d_b.detach()),
                   grad_norm_d=grad_norm(self.d_params))
        self.opt_d.step()
        self.step += 1
        self._last = out
        return out

    # -- samples and evaluation ----------------------------------------------------------------
    def _fixed(self, dataset: Any, n: int) -> Tensor:
        return dataset.get_batch(_evenly(len(dataset), n), epoch=0)["image"]  # type: ignore[no-any-return]

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """uint8 [6 * n, H, W, 3], rows A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B))."""
        from pathgan.data._transforms import to_uint8_nhwc

        n = self.cfg.n_samples
        a, b = self._fixed(self.eval_a, n), self._fixed(self.eval_b, n)
        k = min(len(a), len(b))
        a, b = a[:k], b[:k]
        ab = translate_images(self.nets["g_ab"], a)
        ba = translate_images(self.nets["g_ba"], b)
        rows = [a, ab, translate_images(self.nets["g_ba"], ab), b, ba, translate_images(self.nets["g_ab"], ba)]
        return to_uint8_nhwc(torch.cat(rows))

    def write_samples(self) -> Path:
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        images = self.sample_grid()
        save_grid(path, images, ncols=len(images) // 6)
        return path

    @torch.no_grad()
    def eval_images(self, n: int) -> dict[str, np.ndarray]:
        """Up to ``n`` fixed centred crops per domain and their translations, uint8 (k, H, W, 3):
        ``a``, ``ab`` = G_AB(a), ``b``, ``ba`` = G_BA(b) (for :func:`pathgan.metrics.translation_metrics`)."""
        from pathgan.data._transforms import to_uint8_nhwc

        a, b = self._fixed(self.eval_a, n), self._fixed(self.eval_b, n)
        ab, ba = translate_images(self.nets["g_ab"], a), translate_images(self.nets["g_ba"], b)
        return {k: to_uint8_nhwc(v) for k, v in (("a", a), ("ab", ab), ("b", b), ("ba", ba))}

    # -- the loop ------------------------------------------------------------------------------
    def run(self, steps: int | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) steps have been taken."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        target = cfg.steps if steps is None else steps
        bar = tqdm(total=target, initial=self.step, desc="train-translate", unit="step", disable=not self.progress)
        window = {"t": time.perf_counter(), "steps": 0}
        if self.step == 0:
            self.write_samples()

        def step_once() -> int:
            self.train_step(self.stream_a.next(), self.stream_b.next())
            window["steps"] += 1
            bar.update(1)
            return self.step

        def log() -> None:
            dt = time.perf_counter() - window["t"]
            row = {"step": self.step, **{k: round(v, 6) for k, v in self._last.items()},
                   "sec_per_step": round(dt / window["steps"], 4) if window["steps"] else None,
                   "time": round(time.time(), 1)}
            self.stats.write(row)
            bar.set_postfix(cyc=f"{self._last['loss_cycle_a']:.3f}", d=f"{self._last['loss_d_b']:.3f}")
            window.update(t=time.perf_counter(), steps=0)

        drive(step_once, step=self.step, target=target, log=log, sample=self.write_samples, save=self.save,
              cadence=Cadence(cfg.log_every, cfg.checkpoint_every, cfg.sample_every))
        bar.close()
        return dict(self._last)
