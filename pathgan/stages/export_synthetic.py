"""``pathgan export-synthetic``: synthetic patches per class from a trained run, with provenance.

Output folder (written as ``OUT.partial/`` and renamed to ``OUT`` once complete)::

    OUT/
      <class>/<index>.png   ImageFolder tree, lossless PNG (--format png or both)
      synthetic.zarr        the real stores' schema, attrs synthetic: true, a labels array (zarr or both)
      synthetic.csv         one row per image: index, class, file, seed, truncation, checkpoint_sha256, latent
      latents.npy           float32 [N, w_dim], row = index (the same latents as the CSV, in binary)
      synthetic.json        run provenance, the export settings, class statistics and the method

Image ``index`` is global (class after class, in the order asked for). Its latent regenerates it:
``LatentModel.load(run).generate(latents[index])``. The CSV's ``seed`` is the seed of its z:
``LatentModel.sample_z(1, seed=seed)``; the class transform of :mod:`pathgan.downstream._synthetic`
turns the mapped z into the latent.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pathgan import __version__
from pathgan._io import atomic_replace, fsync_tree
from pathgan.downstream._synthetic import (
    ClassCentroids,
    ExportConfig,
    format_latent,
    image_seeds,
    labelled_latents,
    read_label_csv,
    truncate,
    z_from_seeds,
)
from pathgan.errors import ConfigError
from pathgan.store import SYNTHETIC_SLIDE_ID, StoreAttrs

__all__ = ["CSV_COLUMNS", "export_synthetic", "partial_path"]

CSV_COLUMNS = ("index", "class", "file", "seed", "truncation", "checkpoint_sha256", "latent")

#: Mapping-network draws measuring the generator's spread (``spread="class"``); a fixed seed keeps it reproducible.
_REFERENCE_N, _REFERENCE_SEED = 8192, 2**31 - 1

_METHOD = ("class c: w = mu_c + truncation * s_c * P (w_z - w_avg), mu_c the mean encoded latent of class c, "
           "P the projection removing the span of the class-centroid differences, w_z = mapping(z), "
           "s_c = 1 (spread=generator) or class RMS / generator RMS in the complement (spread=class); "
           "unconditional: w = w_avg + truncation * (w_z - w_avg)")
_METHOD_CONDITIONAL = ("class-conditional run: w = w_avg_c + truncation * (mapping(z, c) - w_avg_c), w_avg_c the "
                       "mean of mapping(., c) over 8,192 draws of z")


def partial_path(out: Path) -> Path:
    """Where ``out`` is built before the final rename."""
    return out.with_name(out.name + ".partial")


def _install(partial: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``partial`` to ``out``; an old ``out`` is moved aside first, then removed."""
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConfigError(f"{out} appeared while this export was running; nothing was replaced")
    fsync_tree(partial)
    atomic_replace(partial, out)


def export_synthetic(
    run_dir: Path,
    cfg: ExportConfig,
    *,
    out: Path | None = None,
    stores: Sequence[Path] | None = None,
    labels: Path | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Generate ``cfg.n`` images per class (or unconditionally) and write them with their provenance.

    Parameters
    ----------
    run_dir
        A ``pathgan train-latent`` run or an exported model (``pathgan export-model``). Class control
        needs stores encoded by it (``pathgan encode``).
    cfg
        What to generate (:class:`~pathgan.downstream.ExportConfig`).
    out
        Output folder; default ``out/synthetic/<run_id>`` (an exported model's ``model_id``).
    stores
        Encoded stores (or folders of them) for the class statistics; default the run's own stores
        (an exported model needs them given).
    labels
        CSV ``slide_id,label`` or ``slide_id,x,y,label``; default the stores' slide labels.
    overwrite
        Replace an existing ``out`` (only once the new export is complete).
    device
        Torch device of the generator (``auto``, ``cpu``, ``cuda`` ...).
    progress
        A tqdm bar over images on stderr.

    Returns
    -------
    Path
        The finished output folder.

    Raises
    ------
    ConfigError
        ``out`` exists without ``overwrite``, an unknown class (the message lists the known ones),
        no labelled patches, or a bad label CSV.
    StoreError, PathganError
        Stores without latents of this run (or of another checkpoint); neither a run directory nor
        an exported model.
    """
    from tqdm.auto import tqdm

    from pathgan.export import open_model
    from pathgan.latents import LatentModel
    from pathgan.store import WHITE_LEVEL, SyntheticStoreWriter, expand_stores
    from pathgan.tissue import blur_scores, white_fractions

    bundle = open_model(run_dir)  # a run or an exported model: checked before any output is touched
    run_dir = bundle.path
    out = Path(out) if out is not None else Path("out") / "synthetic" / bundle.model_id
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
    table = read_label_csv(labels) if labels is not None else None
    model = LatentModel.from_bundle(bundle, device=device)
    prov = model.provenance()
    if model.conditional:
        from dataclasses import replace

        if not cfg.classes:
            cfg = replace(cfg, classes=model.class_names)  # every class the run was trained on
        unknown = [c for c in cfg.classes if c not in model.class_names]
        if unknown:
            raise ConfigError(f"--class {unknown}: {run_dir} is class-conditional with classes "
                              f"{list(model.class_names)}")
    mpp = model.bundle.mpp

    centroids: ClassCentroids | None = None
    store_info: list[dict[str, Any]] = []
    scales: dict[str, float] = {}
    if cfg.classes and not model.conditional:
        paths = expand_stores([Path(p) for p in stores] if stores else model.bundle.default_stores())
        w_lab, lab, store_info = labelled_latents(paths, model.run_id, labels=table,
                                                  checkpoint_sha256=model.checkpoint_sha256)
        centroids = ClassCentroids.fit(w_lab, lab)
        for name in cfg.classes:
            centroids.index(name)  # unknown class: ConfigError listing the known ones, before any work
        gen_rms = 1.0
        if cfg.spread == "class":
            gen_rms = centroids.generator_rms(model.sample_w(_REFERENCE_N, seed=_REFERENCE_SEED), model.mean_w)
        for name in cfg.classes:
            scales[name] = 1.0 if cfg.spread == "generator" else float(centroids.rms[centroids.index(name)]) / gen_rms

    names = cfg.class_names
    total = cfg.n * len(names)
    width = max(6, len(str(total - 1)))
    partial = partial_path(out)
    if partial.exists():
        shutil.rmtree(partial)  # a leftover of an interrupted export of this output
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    try:
        want_png, want_zarr = cfg.format in ("png", "both"), cfg.format in ("zarr", "both")
        writer = (SyntheticStoreWriter(partial / "synthetic.zarr", labels=np.repeat(np.arange(len(names)), cfg.n),
                                       class_names=names, patch_px=model.image_px) if want_zarr else None)
        latents = np.empty((total, model.w_dim), np.float32)
        rows: list[dict[str, Any]] = []
        w_avg = model.mean_w
        with tqdm(total=total, desc=f"export-synthetic {model.run_id}", unit="img", disable=not progress) as bar:
            for ci, name in enumerate(names):
                seeds = image_seeds(cfg.seed, name, cfg.n)
                if want_png:
                    (partial / name).mkdir()
                for s in range(0, cfg.n, cfg.batch_size):
                    batch_seeds = seeds[s : s + cfg.batch_size]
                    z = z_from_seeds(batch_seeds, model.z_dim)
                    if model.conditional:
                        w = model.to_w(z, truncation=cfg.truncation, class_name=name)
                    elif centroids is None:
                        w_z = model.to_w(z)  # [b, w_dim], untruncated
                        w = truncate(w_z, w_avg, cfg.truncation)
                    else:
                        w_z = model.to_w(z)
                        w = centroids.sample(name, w_z, w_avg=w_avg, truncation=cfg.truncation, scale=scales[name])
                    images = model.generate(w, batch_size=cfg.batch_size)  # uint8 [b, px, px, 3]
                    first = ci * cfg.n + s
                    latents[first : first + len(w)] = w
                    for j, (img, seed, wj) in enumerate(zip(images, batch_seeds, w, strict=True)):
                        index = first + j
                        file = f"{name}/{index:0{width}d}.png" if want_png else ""
                        if want_png:
                            _write_png(partial / file, img)
                        rows.append({"index": index, "class": name, "file": file, "seed": int(seed),
                                     "truncation": cfg.truncation, "checkpoint_sha256": model.checkpoint_sha256,
                                     "latent": format_latent(wj)})
                    if writer is not None:
                        writer.add(images, blur_scores(images), white_fractions(images, WHITE_LEVEL))
                    bar.update(len(w))

        np.save(partial / "latents.npy", latents)
        with (partial / "synthetic.csv").open("w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
            wr.writeheader()
            wr.writerows(rows)
        meta = {
            "pathgan_version": __version__,
            "run": prov,
            "export": {**asdict(cfg), "classes": list(cfg.classes)},
            "class_names": list(names),
            "n_images": total,
            "image_px": model.image_px,
            "mpp": mpp,
            "method": _METHOD_CONDITIONAL if model.conditional else _METHOD,
            "spread_scale": scales,
            "class_statistics": centroids.summary() if centroids is not None else None,
            "labels": ("the run's class-conditional mapping network" if model.conditional
                       else (str(labels) if labels is not None else "store slide labels") if cfg.classes else None),
            "stores": store_info,
            "files": {"csv": "synthetic.csv", "latents": "latents.npy",
                      "zarr": "synthetic.zarr" if want_zarr else None, "png": want_png},
        }
        (partial / "synthetic.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if writer is not None:
            source = {"synthetic": True, "run_id": model.run_id, "checkpoint": prov["checkpoint"],
                      "checkpoint_sha256": model.checkpoint_sha256, "encoder_sha256": prov["encoder_sha256"]}
            if mpp is None:
                raise ConfigError(f"{run_dir} records no patch_mpp in its config.yaml; a synthetic.zarr needs one "
                                  "(use --format png)")
            export_cfg: dict[str, Any] = {**asdict(cfg), "classes": list(cfg.classes)}
            writer.finish(StoreAttrs(
                slide_id=SYNTHETIC_SLIDE_ID, source=source, mpp_requested=float(mpp), mpp_effective=(float(mpp), float(mpp)),
                source_level=None, patch_px=writer.patch_px, stride_px=writer.patch_px, n_patches=writer.n,
                tiles_decoded=0, config={**export_cfg, "method": meta["method"], "spread_scale": scales},
                pathgan_version=__version__,
            ))
        _install(partial, out, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        raise
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
