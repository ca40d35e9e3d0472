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

#: Fewest images per side: precision/recall compare with the k = 3rd neighbour, and the FID floor
#: needs two halves of at least 2 real images each.
MIN_IMAGES = 4


def evaluate_run(
    run_dir: Path,
    stores: list[Path] | None = None,
    *,
    n: int = 1000,
    extractor: ExtractorName = "inception",
    weights: Path | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 32,
    out_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compare ``n`` EMA samples with up to ``n`` held-out real patches; writes ``eval-*.json``.

    Real patches come from the run's validation slides (centre crops, no augmentation); when the
    run has none, from its training slides, and the result says so (a score below the real-vs-real
    floor against training patches means the model copies them). ``stores`` default to the stores
    the run recorded; the JSON goes to ``out_dir`` (default the run directory). ``progress`` shows a
    tqdm bar over the images whose features are extracted (the slow part) on stderr.

    Raises
    ------
    ConfigError
        ``n`` below 4, fewer than 4 held-out real patches (the message names the slides and says
        what to change), an unknown extractor, or the run's stores are gone and none are given.
    """
    import torch
    from tqdm.auto import tqdm

    from pathgan.device import select_device
    from pathgan.metrics import (
        InceptionExtractor,
        RandomProjectionExtractor,
        evaluate_features,
        extract_features,
    )
    from pathgan.models import map_any_class, render
    from pathgan.store import expand_stores

    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_IMAGES:
        raise ConfigError(f"--n {n!r}: expected an integer >= {MIN_IMAGES} (generated images to score)")
    run = RunDir.open(run_dir, "latent")
    paths = expand_stores(stores) if stores else run.existing_stores()
    dev = select_device(device)
    modules, model_cfg, ckpt_path = load_generator(run, str(dev))
    real_ds, split = held_out_dataset(paths, run, train=False, seed=seed)
    if len(real_ds) < MIN_IMAGES:
        raise ConfigError(
            f"only {len(real_ds)} held-out real patch(es) ({split} split: "
            f"{', '.join(i.path.name for i in real_ds.stores)}); evaluate needs at least {MIN_IMAGES}: give "
            "--stores with more of the run's held-out slides, or train with more validation slides "
            "(val_fraction, the manifest's split column) or holdout_block_um")
    rng = np.random.default_rng(seed)
    real_idx = np.sort(rng.choice(len(real_ds), size=min(n, len(real_ds)), replace=False))
    device = str(dev)
    ext: Any
    if extractor == "inception":
        ext = InceptionExtractor(weights, device=device)
    elif extractor == "random":
        ext = RandomProjectionExtractor()
    else:
        raise ConfigError(f"extractor={extractor!r} is not allowed; expected 'inception' or 'random'")

    bar = tqdm(total=len(real_idx) + n, desc=f"evaluate {run.name}: {extractor} features",
               unit="img", disable=not progress)

    def counted(batches: Any) -> Any:
        for b in batches:
            yield b
            bar.update(len(b))

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

    with bar:
        real_f = extract_features(ext, counted(real_batches()))
        fake_f = extract_features(ext, counted(fake_batches()))
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
    out_dir = Path(out_dir) if out_dir is not None else run.path
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"eval-{ckpt_path.stem}-{extractor}-n{n}.json"
    atomic_write_text(out, json.dumps(result, indent=1))
    result["path"] = str(out)
    return result
