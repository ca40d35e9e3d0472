"""Read a finished run directory back: its resolved configs, its EMA generator, its checkpoint's hash."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

from pathgan.config import ModelConfig, TrainConfig, from_dict
from pathgan.errors import PathganError

__all__ = ["file_sha256", "held_out_dataset", "load_generator", "load_run_config"]


def load_run_config(run_dir: Path) -> tuple[TrainConfig, ModelConfig, dict[str, Any]]:
    """The resolved configs saved in ``run_dir/config.yaml``: (train, model, the whole saved dict)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PathganError(f"{run_dir} is not a pathgan run directory (no config.yaml)")
    data = yaml.safe_load(path.read_text())
    model = data["model"]
    for key in ("g_channels", "d_channels"):
        model[key] = tuple(model[key])
    return from_dict(TrainConfig, data["train"]), from_dict(ModelConfig, model), data


def load_generator(run_dir: Path, device: str = "cpu", *,
                   model_cfg: ModelConfig | None = None) -> tuple[Any, ModelConfig, Path]:
    """The EMA mapping + generator of the latest checkpoint of ``run_dir`` (eval mode, no gradients).

    Returns ``(modules, model_cfg, checkpoint_path)`` where ``modules["mapping"]`` and
    ``modules["generator"]`` are the averaged networks. Pass ``model_cfg`` when the run's config is
    already loaded; only these two networks are built (no discriminator, no EMA copy).
    """
    import torch
    from torch import nn

    from pathgan.models import Generator, MappingNetwork
    from pathgan.train._checkpoint import load_checkpoint
    from pathgan.train._run import latest_checkpoint

    if model_cfg is None:
        _, model_cfg, _ = load_run_config(run_dir)
    path = latest_checkpoint(Path(run_dir))
    if path is None:
        raise PathganError(f"{run_dir} has no checkpoint yet (checkpoints/step-*.pt); train it first")
    ckpt = load_checkpoint(path, map_location=device)
    # The EMA state dict is that of ModuleDict(mapping=..., generator=...): the same keys as here.
    modules = nn.ModuleDict({"mapping": MappingNetwork.from_config(model_cfg),
                             "generator": Generator(model_cfg)})
    modules.load_state_dict(ckpt["ema"])
    modules = modules.requires_grad_(False).to(torch.device(device)).eval()
    return modules, model_cfg, path


def held_out_dataset(paths: list[Path], cfg: TrainConfig, model_cfg: ModelConfig, saved: dict[str, Any], *,
                     train: bool, seed: int) -> tuple[Any, str]:
    """Real patches of a run's slides among ``paths``: what it trained on (``train=True``, random crops
    and dihedral transforms) or what it never saw (``train=False``, centred crops).

    Held out means, in this order: with ``cfg.holdout_block_um`` > 0, the patches wholly inside the
    "test" squares of the training slides (split ``"test-squares"``); else the run's validation
    slides (``"val"``); else, when it has none, its training slides, and the returned split name says
    so (``"train"``). With the hold-out, ``train=True`` gives only the "train" squares, as in
    training. Returns ``(PatchDataset, split)``.
    """
    from pathgan.data import PatchDataset, SpatialHoldout

    data = saved.get("data", {})
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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached beside it in ``<name>.sha256`` (keyed by size and mtime).

    Checkpoints are written once, atomically, so the cache stays valid; a rewritten file changes
    its mtime and is hashed again.
    """
    path = Path(path)
    st = path.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}"
    cache = path.with_name(path.name + ".sha256")
    try:
        cached_key, digest = cache.read_text().split()
        if cached_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    with contextlib.suppress(OSError):  # a read-only run directory still works, without the cache
        cache.write_text(f"{key} {digest}\n")
    return digest
