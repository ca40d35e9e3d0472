"""Fit an image -> w encoder to a frozen generator, invert images by optimisation, and score both.

The encoder learns from the generator itself (arXiv 2004.06517): draw z, map it to w, render
G(w) and regress w from the image. Every step's z, generator noise and real batch come from a
seed derived from ``(cfg.seed, step)``, so a resumed fit is the same as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pathgan.config import EncoderConfig
from pathgan.errors import ConfigError
from pathgan.models import Encoder, map_any_class, render
from pathgan.runs import ENCODER_DIR, latest_checkpoint
from pathgan.train._checkpoint import load_checkpoint, save_checkpoint
from pathgan.train._drive import Cadence, drive
from pathgan.train._guards import TrainingDivergedError
from pathgan.train._run import StatsWriter

__all__ = ["ENCODER_DIR", "EncoderTrainer", "evaluate_encoder", "invert", "step_generator", "w_statistics"]

#: Folder of a run directory that holds its finished encoder.

RealBatch = Callable[[int], torch.Tensor]


def step_generator(seed: int, step: int, device: torch.device, *, stream: int = 0) -> torch.Generator:
    """A torch Generator on ``device`` seeded from ``(seed, stream, step)`` alone (no state to save).

    Streams keep uses apart: 0 training steps, 1 w statistics, 2 evaluation.
    """
    g = torch.Generator(device=device)
    ss = np.random.SeedSequence([int(seed), int(stream), int(step)])
    g.manual_seed(int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return g


@torch.no_grad()
def w_statistics(mapping: Any, *, n: int = 8192, seed: int = 0, batch: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-dimension std [w_dim] of w = mapping(z) over ``n`` draws of z ~ N(0, I).

    The mean is the ``w_avg`` of the truncation trick.
    """
    device = next(mapping.parameters()).device
    g = step_generator(seed, 0, device, stream=1)
    ws = [map_any_class(mapping, torch.randn(min(batch, n - s), mapping.z_dim, generator=g, device=device), g)
          for s in range(0, n, batch)]
    w = torch.cat(ws)
    return w.mean(0), w.std(0)


class EncoderTrainer:
    """Trains ``encoder`` against a frozen ``mapping`` + ``generator`` (the run's EMA networks).

    Parameters
    ----------
    cfg : the encoder settings.
    mapping, generator : frozen networks on ``device`` (eval mode, no gradients needed).
    encoder : the network to fit, on ``device``; its w statistics are set here on a fresh start.
    out_dir : where ``stats.jsonl`` and ``checkpoints/step-*.pt`` go.
    real_batch : ``step -> images [B, 3, px, px]`` of real patches; required when
        ``cfg.real_weight > 0``.
    provenance : JSON-safe facts saved in every checkpoint (generator checkpoint and its hash, ...).
    """

    def __init__(
        self,
        cfg: EncoderConfig,
        *,
        mapping: Any,
        generator: Any,
        encoder: Encoder,
        out_dir: Path,
        device: torch.device,
        real_batch: RealBatch | None = None,
        provenance: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        if cfg.real_weight > 0 and real_batch is None:
            raise ConfigError("real_weight > 0 needs real patches: pass --stores (or keep the run's stores in place)")
        self.cfg = cfg
        self.mapping = mapping.eval().requires_grad_(False)
        self.generator = generator.eval().requires_grad_(False)
        self.encoder = encoder
        self.out_dir = Path(out_dir)
        self.device = device
        self.real_batch = real_batch
        self.provenance = dict(provenance or {})
        self.progress = progress
        self.opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.step = 0
        self.w_avg, w_std = w_statistics(self.mapping, seed=cfg.seed)
        with torch.no_grad():  # the encoder predicts w standardised by the mapping's own statistics
            encoder.w_mean.copy_(self.w_avg)
            encoder.w_std.copy_(w_std.clamp_min(1e-6))
        (self.out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.stats = StatsWriter(self.out_dir / "stats.jsonl")

    def _sample_w(self, g: torch.Generator, n: int) -> torch.Tensor:
        z = torch.randn(n, self.mapping.z_dim, generator=g, device=self.device)
        w: torch.Tensor = map_any_class(self.mapping, z, g)
        if self.cfg.truncation < 1.0:
            w = self.w_avg + self.cfg.truncation * (w - self.w_avg)
        return w

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        """One optimiser step; returns the detached loss terms."""
        cfg, enc = self.cfg, self.encoder
        enc.train()
        g = step_generator(cfg.seed, step, self.device)
        with torch.no_grad():
            w = self._sample_w(g, cfg.batch_size)
            images = render(self.generator, w, noise=True, rng=g)  # [B, 3, px, px]
        pred = enc.standardized(images)
        target = (w - enc.w_mean) / enc.w_std
        loss_w = F.mse_loss(pred, target)
        terms = {"loss_w": loss_w}
        loss = cfg.w_weight * loss_w
        if cfg.image_weight > 0:
            recon = render(self.generator, pred * enc.w_std + enc.w_mean, noise=False)
            terms["loss_image"] = F.mse_loss(recon, images)
            loss = loss + cfg.image_weight * terms["loss_image"]
        if cfg.real_weight > 0 and self.real_batch is not None:
            real = self.real_batch(step).to(self.device)
            terms["loss_real"] = F.mse_loss(render(self.generator, enc(real), noise=False), real)
            loss = loss + cfg.real_weight * terms["loss_real"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.opt.step()
        terms["loss"] = loss
        return {k: v.detach() for k, v in terms.items()}

    def checkpoint_path(self, step: int) -> Path:
        return self.out_dir / "checkpoints" / f"step-{step:06d}.pt"

    def save(self) -> Path:
        path = self.checkpoint_path(self.step)
        save_checkpoint(path, {
            "kind": "encoder",
            "step": self.step,
            "encoder": self.encoder.state_dict(),
            "channels": list(self.encoder.channels),
            "optimizer": self.opt.state_dict(),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.cfg).items()},
            "provenance": self.provenance,
        })
        return path

    def resume(self) -> bool:
        """Continue from the latest checkpoint in ``out_dir``; False when there is none."""
        path = latest_checkpoint(self.out_dir)
        if path is None:
            return False
        ckpt = load_checkpoint(path, map_location=self.device)
        self.encoder.load_state_dict(ckpt["encoder"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.stats.truncate_after(self.step)
        return True

    def run(self) -> Path:
        """Train to ``cfg.steps`` and return the last checkpoint's path.

        Raises
        ------
        TrainingDivergedError
            A loss became NaN or infinite (the last good checkpoint stays).
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train-encoder", unit="step", disable=not self.progress)
        window = {"t": time.perf_counter(), "step": self.step}
        done: dict[str, Any] = {"terms": {}, "path": None}

        def step_once() -> int:
            done["terms"] = self.train_step(self.step)
            self.step += 1
            bar.update(1)
            return self.step

        def log() -> None:
            values = {k: float(v) for k, v in done["terms"].items()}
            if not all(np.isfinite(list(values.values()))):
                raise TrainingDivergedError(
                    f"encoder loss became non-finite at step {self.step} ({values}); "
                    f"the last good checkpoint is in {self.out_dir / 'checkpoints'}; lower lr")
            dt = time.perf_counter() - window["t"]
            row = {"step": self.step, **values, "w_r2": 1.0 - values["loss_w"],
                   "img_per_s": (self.step - window["step"]) * cfg.batch_size / max(dt, 1e-9)}
            self.stats.write(row)
            bar.set_postfix(loss_w=f"{values['loss_w']:.3f}")
            window.update(t=time.perf_counter(), step=self.step)

        def save() -> None:
            done["path"] = self.save()

        drive(step_once, step=self.step, target=cfg.steps, log=log, save=save,
              cadence=Cadence(cfg.log_every, cfg.checkpoint_every))
        last_path = done["path"]
        bar.close()
        # Resumed at the end already: the last checkpoint is there (rewriting it would change its hash cache).
        return last_path or latest_checkpoint(self.out_dir) or self.save()


def invert(
    generator: Any,
    images: torch.Tensor,
    w_init: torch.Tensor,
    *,
    steps: int = 100,
    lr: float = 0.05,
    w_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """GAN inversion: refine w [N, w_dim] by Adam on the pixel MSE of G(w) against ``images``.

    The step is taken in units of ``w_std`` (each dimension's spread) when given, so one ``lr``
    suits every w scale. The generator runs without noise; returns the refined w (detached).
    """
    if steps < 0:
        raise ConfigError(f"refine steps={steps!r} is not allowed; expected >= 0")
    w0 = w_init.detach()
    scale = w_std.detach() if w_std is not None else torch.ones_like(w0[0])
    delta = torch.zeros_like(w0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    target = images.detach()
    for _ in range(steps):
        with torch.enable_grad():
            recon = render(generator, w0 + delta * scale, noise=False)
            loss = F.mse_loss(recon, target, reduction="none").mean(dim=(1, 2, 3)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return (w0 + delta * scale).detach()


def _psnr(mse: np.ndarray) -> float:
    return float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))))


@torch.no_grad()
def evaluate_encoder(
    mapping: Any,
    generator: Any,
    encoder: Encoder,
    *,
    n: int = 256,
    seed: int = 12345,
    real: torch.Tensor | None = None,
    refine_steps: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Score an encoder.

    Generated images (``n``, fresh seeds): ``w_nmse`` is the MSE of E(G(w)) against w in units of
    each dimension's variance (0 = perfect, 1 = as bad as predicting the mean w) and ``w_r2`` = 1 - it;
    ``w_cosine`` the mean cosine similarity of the centred vectors; ``gen_recon_mse`` the pixel MSE
    of G(E(G(w))) against G(w) (both noise-free).

    Real images ``real`` [M, 3, px, px] (held-out patches): ``real_recon_mse`` / ``real_recon_psnr``
    of G(E(x)) against x; ``real_mean_w_mse`` is the same for the single image G(w_avg), the
    baseline an encoder must beat; with ``refine_steps`` also the errors after GAN inversion.
    """
    encoder.eval()
    device = next(encoder.parameters()).device
    g = step_generator(seed, 0, device, stream=2)
    # Normalise by the mapping's own w statistics, not the encoder's buffers (an untrained encoder
    # has placeholder ones).
    mean, std = w_statistics(mapping, seed=seed)
    nmse, cos, gen_mse = [], [], []
    for s in range(0, n, batch_size):
        m = min(batch_size, n - s)
        w = map_any_class(mapping, torch.randn(m, mapping.z_dim, generator=g, device=device), g)
        clean = render(generator, w, noise=False)
        noisy = render(generator, w, noise=True, rng=g)
        pred = encoder(noisy)
        nmse.append((((pred - w) / std) ** 2).mean(1).cpu())
        cos.append(F.cosine_similarity(pred - mean, w - mean, dim=1).cpu())
        gen_mse.append(((render(generator, pred, noise=False) - clean) ** 2).mean(dim=(1, 2, 3)).cpu())
    out: dict[str, Any] = {
        "n_generated": n,
        "w_nmse": float(torch.cat(nmse).mean()),
        "w_cosine": float(torch.cat(cos).mean()),
        "gen_recon_mse": float(torch.cat(gen_mse).mean()),
    }
    out["w_r2"] = 1.0 - out["w_nmse"]
    if real is None or len(real) == 0:
        return out
    mse, base, refined = [], [], []
    mean_img = render(generator, mean[None], noise=False)
    for s in range(0, len(real), batch_size):
        x = real[s : s + batch_size].to(device)
        w = encoder(x)
        mse.append(((render(generator, w, noise=False) - x) ** 2).mean(dim=(1, 2, 3)).cpu())
        base.append(((mean_img - x) ** 2).mean(dim=(1, 2, 3)).cpu())
        if refine_steps:
            w_ref = invert(generator, x, w, steps=refine_steps, w_std=std)
            refined.append(((render(generator, w_ref, noise=False) - x) ** 2).mean(dim=(1, 2, 3)).cpu())
    mse_a, base_a = torch.cat(mse).numpy(), torch.cat(base).numpy()
    out.update({"n_real": len(real), "real_recon_mse": float(mse_a.mean()), "real_recon_psnr": _psnr(mse_a),
                "real_mean_w_mse": float(base_a.mean()), "real_mean_w_psnr": _psnr(base_a)})
    if refine_steps:
        ref_a = torch.cat(refined).numpy()
        out.update({"refine_steps": refine_steps, "real_refined_mse": float(ref_a.mean()),
                    "real_refined_psnr": _psnr(ref_a)})
    return out
