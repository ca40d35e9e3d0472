"""``pathgan evaluate``: FID, KID and precision/recall of a run's EMA generator vs held-out patches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pathgan._io import atomic_write_text
from pathgan.errors import ConfigError
from pathgan.runs import RunDir
from pathgan.train import held_out_dataset, load_generator

__all__ = ["ExtractorName", "evaluate_run", "load_generator"]

ExtractorName = Literal["inception", "random"]


def evaluate_run(
    run_dir: Path,
    stores: list[Path],
    *,
    n: int = 1000,
    extractor: ExtractorName = "inception",
    weights: Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare ``n`` EMA samples with up to ``n`` held-out real patches; writes ``eval-*.json``.

    Real patches come from the run's validation slides (centre crops, no augmentation); when the
    run has none, from its training slides, and the result says so (a score below the real-vs-real
    floor against training patches means the model copies them).
    """
    import torch

    from pathgan.metrics import (
        InceptionExtractor,
        RandomProjectionExtractor,
        evaluate_features,
        extract_features,
    )
    from pathgan.models import map_any_class, render
    from pathgan.store import expand_stores

    run = RunDir.open(run_dir, "latent")
    modules, model_cfg, ckpt_path = load_generator(run, device)
    real_ds, split = held_out_dataset(expand_stores(stores), run, train=False, seed=seed)
    if len(real_ds) < 2:
        raise ConfigError(f"only {len(real_ds)} held-out real patch(es) in {[i.path.name for i in real_ds.stores]}")
    rng = np.random.default_rng(seed)
    real_idx = np.sort(rng.choice(len(real_ds), size=min(n, len(real_ds)), replace=False))
    dev = torch.device(device)
    ext: Any
    if extractor == "inception":
        ext = InceptionExtractor(weights, device=device)
    elif extractor == "random":
        ext = RandomProjectionExtractor()
    else:
        raise ConfigError(f"extractor={extractor!r} is not allowed; expected 'inception' or 'random'")

    def real_batches() -> Any:
        for s in range(0, len(real_idx), batch_size):
            yield real_ds.get_batch(real_idx[s : s + batch_size])["image"]

    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)

    @torch.no_grad()
    def fake_batches() -> Any:
        for s in range(0, n, batch_size):
            m = min(batch_size, n - s)
            z = torch.randn(m, model_cfg.z_dim, generator=gen, device=dev)
            yield render(modules["generator"], map_any_class(modules["mapping"], z, gen), rng=gen).clamp(0, 1).cpu()

    real_f = extract_features(ext, real_batches())
    fake_f = extract_features(ext, fake_batches())
    # KID subsets of half the smaller set: subsets of all samples would all be identical (std 0).
    subset = max(2, min(1000, min(len(real_f), len(fake_f)) // 2))
    result = {
        **evaluate_features(real_f, fake_f, seed=seed, kid_subset_size=subset),
        "kid_subset_size": subset,
        "extractor": getattr(ext, "name", extractor),
        "real_split": split,
        "real_slides": sorted(i.path.stem for i in real_ds.stores),
        "checkpoint": ckpt_path.name,
        "image_px": model_cfg.image_px,
    }
    out = run_dir / f"eval-{ckpt_path.stem}-{extractor}-n{n}.json"
    atomic_write_text(out, json.dumps(result, indent=1))
    result["path"] = str(out)
    return result
