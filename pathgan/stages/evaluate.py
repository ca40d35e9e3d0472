"""``pathgan evaluate``: FID, KID and precision/recall of a run's (or an exported model's) EMA generator
vs held-out patches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pathgan._io import atomic_write_text
from pathgan.errors import ConfigError, PathganError
from pathgan.train import held_out_dataset, load_generator

if TYPE_CHECKING:
    from pathgan.export import ModelBundle

__all__ = ["ExtractorName", "evaluate_run", "held_out_of_export", "load_generator"]

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

    ``run_dir`` is a train-latent run or an exported model (``pathgan export-model``). Real patches
    come from the run's validation slides (centre crops, no augmentation); when the run has none,
    from its training slides, and the result says so (a score below the real-vs-real floor against
    training patches means the model copies them). ``stores`` default to the run's own; an exported
    model needs them given, and stores of slides it never saw count as held out (split ``unseen``).
    The JSON goes to ``out_dir`` (default the run directory, or the exported model's folder).
    ``progress`` shows a tqdm bar over the images whose features are extracted (the slow part).

    Raises
    ------
    ConfigError
        ``n`` below 4, fewer than 4 held-out real patches (the message names the slides and says
        what to change), an unknown extractor, no stores for an exported model, or the run's
        stores are gone and none are given.
    PathganError
        Neither a run nor an exported model, no checkpoint, a damaged export, an unwritable folder.
    """
    import torch
    from tqdm.auto import tqdm

    from pathgan.device import select_device
    from pathgan.export import open_model
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
    bundle = open_model(run_dir, with_encoder=False)
    paths = expand_stores(list(stores)) if stores else bundle.default_stores()
    if bundle.run is not None:
        real_ds, split = held_out_dataset(paths, bundle.run, train=False, seed=seed)
    else:
        real_ds, split = held_out_of_export(paths, bundle, seed=seed)
    if len(real_ds) < MIN_IMAGES:
        raise ConfigError(
            f"only {len(real_ds)} held-out real patch(es) ({split} split: "
            f"{', '.join(i.path.name for i in real_ds.stores)}); evaluate needs at least {MIN_IMAGES}: give "
            "--stores with more of the model's held-out slides, or train with more validation slides "
            "(val_fraction, the manifest's split column) or holdout_block_um")
    model_cfg = bundle.model_cfg
    dev = select_device(device)
    device = str(dev)
    nets = bundle.build(dev)
    modules = {"mapping": nets.mapping, "generator": nets.generator}
    rng = np.random.default_rng(seed)
    real_idx = np.sort(rng.choice(len(real_ds), size=min(n, len(real_ds)), replace=False))
    ext: Any
    if extractor == "inception":
        ext = InceptionExtractor(weights, device=device)
    elif extractor == "random":
        ext = RandomProjectionExtractor()
    else:
        raise ConfigError(f"extractor={extractor!r} is not allowed; expected 'inception' or 'random'")

    bar = tqdm(total=len(real_idx) + n, desc=f"evaluate {bundle.path.name}: {extractor} features",
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
        "checkpoint": bundle.checkpoint,
        "image_px": model_cfg.image_px,
        "model_id": bundle.model_id,
        "weights_dtype": bundle.dtype,
    }
    out_dir = Path(out_dir) if out_dir is not None else bundle.path
    out = out_dir / f"eval-{Path(bundle.checkpoint).stem}-{extractor}-n{n}.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=1))
    except OSError as err:
        raise PathganError(f"cannot write {out}: {err.strerror or err}") from err
    result["path"] = str(out)
    return result


def held_out_of_export(paths: list[Path], bundle: ModelBundle, *, seed: int) -> tuple[Any, str]:
    """Real patches among ``paths`` that an exported model did not train on, and the split's name.

    Among the model's own slides (by slide id, as its provenance lists them) the choice is that of
    :func:`pathgan.train.held_out_dataset` for its run: its hold-out squares, else its validation
    slides; then the slides it never saw (split ``unseen``: all their patches are held out); only
    when there is nothing else, its training slides (said so by the split ``train``). Patches are chosen by the model's
    tissue and white-fraction thresholds and centre-cropped, as in training.
    """
    from pathgan.data import PatchDataset, SpatialHoldout

    train, data = bundle.train, bundle.provenance
    train_ids, val_ids = set(data.get("train_slides") or []), set(data.get("val_slides") or [])
    block_um = float(train.get("holdout_block_um") or 0.0)
    holdout = None
    own = [p for p in paths if p.stem in train_ids | val_ids]
    if not own:
        chosen, split = paths, "unseen"
    elif block_um > 0 and any(p.stem in train_ids for p in paths):
        chosen = [p for p in paths if p.stem in train_ids]
        holdout, split = SpatialHoldout(block_um=block_um, part="test"), "test-squares"
    elif any(p.stem in val_ids for p in paths):
        chosen, split = [p for p in paths if p.stem in val_ids], "val"
    elif len(own) < len(paths):  # slides it never saw beat its own training slides
        chosen, split = [p for p in paths if p not in own], "unseen"
    else:
        chosen, split = own, "train"
    ds = PatchDataset(chosen, image_px=bundle.image_px, min_tissue_fraction=float(train["min_tissue_fraction"]),
                      max_white_fraction=float(train["max_white_fraction"]), random_crop=False, dihedral=False,
                      seed=seed, holdout=holdout)
    return ds, split
