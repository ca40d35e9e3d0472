"""``pathgan train-encoder RUN_DIR``: fit an image -> w encoder to a trained run, then score it.

The encoder lives in ``RUN_DIR/encoder/``::

    config.yaml                 resolved EncoderConfig + what it was fitted to
    stats.jsonl                 one JSON object per logged step
    checkpoints/step-003000.pt  encoder weights, optimiser, step, provenance (generator hash)
    eval.json                   w-regression and reconstruction errors (see evaluate_encoder)
    recon.png                   rows of held-out real patches and their reconstructions

Training happens in ``RUN_DIR/encoder.partial/`` and is renamed to ``encoder/`` when finished and
scored, so ``encoder/`` always holds a complete encoder; an interrupted fit resumes from the
partial folder. ``overwrite`` retrains and replaces a finished encoder only once the new one is done.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pathgan._io import atomic_replace, fsync_tree
from pathgan.config import EncoderConfig
from pathgan.device import select_device
from pathgan.errors import ConfigError
from pathgan.runs import ENCODER_DIR, RunDir, save_grid, write_yaml
from pathgan.train import held_out_dataset

__all__ = ["ENCODER_DIR", "train_encoder"]


def _store_paths(run: RunDir, stores: list[Path] | None) -> list[Path]:
    """``stores`` (expanded), else the run's own stores that still exist."""
    from pathgan.store import expand_stores

    return expand_stores(stores) if stores else [p for p in run.stores() if p.exists()]


def train_encoder(
    run_dir: Path,
    cfg: EncoderConfig,
    *,
    stores: list[Path] | None = None,
    device: str = "auto",
    overwrite: bool = False,
    eval_refine_steps: int = 50,
    progress: bool = True,
) -> Path:
    """Fit (or resume fitting) the encoder of ``run_dir``; returns ``run_dir/encoder``.

    ``stores`` default to the stores the run was trained on (from its config.yaml); they are
    needed for ``cfg.real_weight > 0`` and for the real-patch half of the evaluation.

    Raises
    ------
    ConfigError
        ``run_dir/encoder`` already exists (without ``overwrite``); the partial fit was started with
        another configuration; real patches are needed but none are found.
    """
    import torch

    from pathgan.export import is_exported_model, open_model
    from pathgan.models import Encoder
    from pathgan.train.encoder import EncoderTrainer, evaluate_encoder

    if is_exported_model(run_dir):
        # An export is a finished, hashed artefact without its training stores, optimiser or run
        # folder to resume in; the encoder belongs in the run, and a new export then carries it.
        raise ConfigError(f"{run_dir} is an exported model; fit the encoder on the run it came from "
                          f"(pathgan train-encoder --run RUN) and export that run again")
    run = RunDir.open(run_dir, "latent")
    run_dir = run.path
    final, partial = run.encoder_dir, run.encoder_dir.with_name(f"{ENCODER_DIR}.partial")
    if final.exists() and not overwrite:
        raise ConfigError(f"{final} already holds a trained encoder; pass --overwrite to fit a new one "
                          "(the old one stays until the new one is finished)")
    dev = select_device(device)
    bundle = open_model(run.path, with_encoder=False)  # the one loader: EMA weights of the latest checkpoint
    model_cfg = bundle.model_cfg
    mapping, generator, _ = bundle.build(dev)
    paths = _store_paths(run, stores)
    provenance = {
        "run_dir": str(run_dir.resolve()),
        "run_id": run_dir.name,
        "generator_checkpoint": bundle.checkpoint,
        "checkpoint_sha256": bundle.checkpoint_sha256,
        "model": model_cfg.name,
    }
    settings = {"encoder": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
                "fitted_to": provenance}
    if (partial / "config.yaml").exists():
        import yaml

        old = yaml.safe_load((partial / "config.yaml").read_text())
        if old != settings:
            raise ConfigError(f"{partial} holds an interrupted fit with other settings or another generator "
                              f"checkpoint; delete it to start again (old: {old}, new: {settings})")
    partial.mkdir(parents=True, exist_ok=True)
    write_yaml(partial / "config.yaml", settings)

    real_batch = None
    if cfg.real_weight > 0:
        if not paths:
            raise ConfigError(f"real_weight={cfg.real_weight} needs the run's stores; none of them exist any more. "
                              "Pass --stores")
        train_ds, _ = held_out_dataset(paths, run, train=True, seed=cfg.seed)

        def real_batch(step: int) -> torch.Tensor:
            rng = np.random.default_rng([cfg.seed, step, 7])
            idx = rng.choice(len(train_ds), size=cfg.batch_size, replace=len(train_ds) < cfg.batch_size)
            return train_ds.get_batch(np.sort(idx), epoch=step)["image"]  # type: ignore[no-any-return]

    torch.manual_seed(cfg.seed)
    encoder = Encoder(model_cfg, cfg.channels).to(dev)
    trainer = EncoderTrainer(cfg, mapping=mapping, generator=generator, encoder=encoder, out_dir=partial,
                             device=dev, real_batch=real_batch, provenance=provenance, progress=progress)
    trainer.resume()
    trainer.run()

    real, split = None, "none"
    if paths:
        val_ds, split = held_out_dataset(paths, run, train=False, seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        idx = np.sort(rng.choice(len(val_ds), size=min(cfg.n_eval, len(val_ds)), replace=False))
        real = val_ds.get_batch(idx)["image"]
    result = evaluate_encoder(mapping, generator, encoder, n=cfg.n_eval, real=real,
                              refine_steps=eval_refine_steps)
    result.update({"real_split": split, "step": trainer.step, **provenance})
    (partial / "eval.json").write_text(json.dumps(result, indent=2))
    if real is not None:
        _save_recon_grid(partial / "recon.png", generator, encoder, real[:8].to(dev))

    fsync_tree(partial)
    atomic_replace(partial, final)
    return final


def _save_recon_grid(path: Path, generator: Any, encoder: Any, real: Any) -> None:
    """Two rows: real patches, then G(E(x)) (noise-free)."""
    import torch

    from pathgan.data._transforms import to_uint8_nhwc
    from pathgan.models import render

    with torch.no_grad():
        recon = render(generator, encoder(real), noise=False)
    save_grid(path, to_uint8_nhwc(torch.cat([real, recon])), ncols=len(real))
