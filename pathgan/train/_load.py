"""Build what a finished train-latent run trained: its EMA generator, and the real patches it did or did not see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pathgan.config import ModelConfig
from pathgan.runs import RunDir

__all__ = ["held_out_dataset", "load_generator"]


def load_generator(run: RunDir | Path, device: str = "cpu") -> tuple[Any, ModelConfig, Path]:
    """The EMA mapping + generator of the latest checkpoint of ``run`` (eval mode, no gradients).

    Returns ``(modules, model_cfg, checkpoint_path)`` where ``modules["mapping"]`` and
    ``modules["generator"]`` are the averaged networks; only these two are built (no
    discriminator, no EMA copy).

    Raises
    ------
    PathganError : not a train-latent run, or no checkpoint yet.
    """
    import torch
    from torch import nn

    from pathgan.models import Generator, MappingNetwork
    from pathgan.train._checkpoint import load_checkpoint

    run = run if isinstance(run, RunDir) else RunDir.open(run, "latent")
    _, model_cfg = run.train_configs()
    path = run.require_checkpoint()
    ckpt = load_checkpoint(path, map_location=device)
    # The EMA state dict is that of ModuleDict(mapping=..., generator=...): the same keys as here.
    modules = nn.ModuleDict({"mapping": MappingNetwork.from_config(model_cfg),
                             "generator": Generator(model_cfg)})
    modules.load_state_dict(ckpt["ema"])
    modules = modules.requires_grad_(False).to(torch.device(device)).eval()
    return modules, model_cfg, path


def held_out_dataset(paths: list[Path], run: RunDir, *, train: bool, seed: int) -> tuple[Any, str]:
    """Real patches of a run's slides among ``paths``: what it trained on (``train=True``, random crops
    and dihedral transforms) or what it never saw (``train=False``, centred crops).

    Held out means, in this order: with ``cfg.holdout_block_um`` > 0, the patches wholly inside the
    "test" squares of the training slides (split ``"test-squares"``); else the run's validation
    slides (``"val"``); else, when it has none, its training slides, and the returned split name says
    so (``"train"``). With the hold-out, ``train=True`` gives only the "train" squares, as in
    training. Returns ``(PatchDataset, split)``.
    """
    from pathgan.data import PatchDataset, SpatialHoldout

    cfg, model_cfg = run.train_configs()
    data = run.provenance
    train_ids = set(data.get("train_slides") or [])
    holdout = None
    if cfg.holdout_block_um > 0:
        chosen = [p for p in paths if p.stem in train_ids]
        holdout = SpatialHoldout(block_um=cfg.holdout_block_um, part="train" if train else "test")
        split = "train" if train else "test-squares"
    else:
        chosen = [p for p in paths if p.stem in (train_ids if train else set(data.get("val_slides") or []))]
        split = "train" if train else "val"
        if not chosen and not train:
            chosen, split = [p for p in paths if p.stem in train_ids], "train"
    ds = PatchDataset(chosen or paths, image_px=model_cfg.image_px, min_tissue_fraction=cfg.min_tissue_fraction,
                      max_white_fraction=cfg.max_white_fraction, random_crop=train, dihedral=train, seed=seed,
                      holdout=holdout)
    return ds, split
