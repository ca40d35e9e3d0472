"""``pathgan train-translate`` and ``pathgan translate``: CycleGAN stain/site translation between two
domains of patch stores, and translated copies of stores in the stores' own schema.

A translation run directory (``runs/00003-cyclegan-cpu/``) holds ``config.yaml`` (resolved
:class:`~pathgan.config.TranslateConfig`, both domains' stores and data provenance),
``stats.jsonl``, ``samples/step-*.png`` (rows A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B),
G_AB(G_BA(B))), ``checkpoints/step-*.pt`` and, once trained, ``eval.json``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal, get_args

from pathgan._io import atomic_write_bytes
from pathgan._lock import folder_lock
from pathgan.config import TranslateConfig
from pathgan.device import select_device
from pathgan.errors import ConfigError, PathganError
from pathgan.runs import RunDir, file_sha256, latest_checkpoint
from pathgan.stages._status import StatusRow, describe_error
from pathgan.store import expand_each_store, expand_stores

__all__ = [
    "DOMAINS",
    "Direction",
    "evaluate_translated",
    "load_translator",
    "train_translate",
    "translate_stores",
    "write_training_eval",
]

Direction = Literal["a2b", "b2a"]
DOMAINS = ("a", "b")


def _open_domain(paths: list[Path], option: str, crop_px: int) -> list[Any]:
    """Open every store of a domain, refusing patches smaller than the training crops."""
    from pathgan.store import PatchStore

    stores = [PatchStore(p) for p in paths]
    for s in stores:
        if s.patch_px < crop_px:
            raise ConfigError(f"{option} {s.path}: patch_px={s.patch_px}, smaller than TranslateConfig "
                              f"patch_px={crop_px} (training crops are never upsampled); re-tile with "
                              f"--patch-px >= {crop_px}, or train on smaller crops (--set patch_px=N, N <= {s.patch_px})")
    return stores


def _datasets(stores: list[Any], cfg: TranslateConfig, seed: int) -> tuple[Any, Any]:
    """(training dataset: random crops + dihedral, evaluation dataset: centred crops) of one domain."""
    from pathgan.data import PatchDataset

    def dataset(train: bool) -> PatchDataset:
        return PatchDataset(stores, image_px=cfg.patch_px, min_tissue_fraction=cfg.min_tissue_fraction,
                            max_white_fraction=cfg.max_white_fraction, random_crop=train,
                            dihedral=cfg.dihedral and train, seed=seed)

    return dataset(True), dataset(False)


def train_translate(
    a_stores: list[Path],
    b_stores: list[Path],
    cfg: TranslateConfig,
    *,
    runs_root: Path = Path("runs"),
    name: str = "cyclegan",
    device: str = "auto",
    resume: Path | None = None,
    steps_override: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) a CycleGAN between domains A and B; returns the run directory.

    With ``resume`` the configuration saved in the run directory is used (``steps_override`` may
    extend it; the learning-rate decay then stretches to the new end) and training continues
    from the latest checkpoint, bit-exactly when ``steps`` is unchanged. Empty ``a_stores`` /
    ``b_stores`` on resume mean the run's own stores.

    Raises
    ------
    ConfigError
        A missing or empty domain, a store with patches smaller than ``cfg.patch_px``, domains at
        different MPP, the same store in both domains, fewer patches than ``batch_size`` after the
        filters, or resuming with other data than the run was trained on.
    StoreError
        A path is not a complete patch store.
    PathganError
        ``resume`` has no checkpoint.
    """
    from pathgan.data import describe
    from pathgan.store import SCHEMA_VERSION
    from pathgan.train.cyclegan import CycleGANTrainer

    run: RunDir | None = None
    if resume is not None:
        run = RunDir.open(resume, "translate")
        cfg = run.translate_config()
        if steps_override is not None:
            cfg = replace(cfg, steps=steps_override)
        a_stores = a_stores or run.stores("a")
        b_stores = b_stores or run.stores("b")
    paths = {"a": expand_stores(a_stores, "--stores-a"), "b": expand_stores(b_stores, "--stores-b")}
    both = sorted({p.resolve() for p in paths["a"]} & {p.resolve() for p in paths["b"]})
    if both:
        raise ConfigError(f"--stores-a and --stores-b share store(s) {[str(p) for p in both]}; the two domains "
                          "must be disjoint")
    dev = select_device(device)
    stores = {d: _open_domain(paths[d], f"--stores-{d}", cfg.patch_px) for d in DOMAINS}
    data = {d: _datasets(stores[d], cfg, cfg.seed + i) for i, d in enumerate(DOMAINS)}
    info = {d: describe(data[d][0]) for d in DOMAINS}
    if not math.isclose(info["a"]["mpp"], info["b"]["mpp"], rel_tol=1e-3):
        raise ConfigError(f"domain A stores are at {info['a']['mpp']:g} um/px and domain B stores at "
                          f"{info['b']['mpp']:g} um/px; tile both domains at the same --mpp")
    provenance: dict[str, Any] = {
        "store_schema": SCHEMA_VERSION,
        "patch_mpp": info["a"]["mpp"],
        "crop_px": cfg.patch_px,
        "domains": {d: {"stores": [str(p.resolve()) for p in paths[d]], "slides": [s.slide_id for s in stores[d]],
                        "store_patch_px": info[d]["patch_px"], "n_patches": info[d]["n_patches"],
                        "data_fingerprint": info[d]["fingerprint"]} for d in DOMAINS},
    }
    if run is not None:
        before = run.provenance.get("domains", {})
        for d in DOMAINS:
            old = before.get(d, {}).get("data_fingerprint")
            if old is not None and old != info[d]["fingerprint"]:
                raise ConfigError(f"--resume {resume}: domain {d.upper()} stores differ from those the run was "
                                  f"trained on ({before[d].get('stores')}); resume with the same data")
    else:
        run = RunDir.create(Path(runs_root), name)
        run.write_config({"translate": asdict(cfg), "data": provenance,
                          "stores": {d: list(provenance["domains"][d]["stores"]) for d in DOMAINS}})
    with folder_lock(run.path, "train-translate"):
        trainer = CycleGANTrainer(cfg, data_a=data["a"][0], data_b=data["b"][0], eval_a=data["a"][1],
                                  eval_b=data["b"][1], run_dir=run.path, device=dev, provenance=provenance,
                                  progress=progress)
        if resume is not None:
            trainer.resume()
        trainer.run()
        write_training_eval(trainer)
    return run.path


def write_training_eval(trainer: Any) -> dict[str, Any]:
    """Both directions' :func:`~pathgan.metrics.translation_metrics` on up to ``n_eval`` fixed centred
    crops per domain of a trained :class:`~pathgan.train.cyclegan.CycleGANTrainer`, written to
    ``RUN/eval.json`` (atomically) and returned."""
    from pathgan.metrics import translation_metrics

    cfg = trainer.cfg
    im = trainer.eval_images(cfg.n_eval)
    ckpt = latest_checkpoint(trainer.run_dir)
    res = {
        "step": trainer.step,
        "checkpoint": ckpt.name if ckpt is not None else None,
        "images": f"centred {cfg.patch_px}-px crops of the training stores (the model saw these slides)",
        "a2b": translation_metrics(im["a"], im["ab"], im["b"], seed=cfg.seed),
        "b2a": translation_metrics(im["b"], im["ba"], im["a"], seed=cfg.seed),
    }
    atomic_write_bytes(trainer.run_dir / "eval.json", (json.dumps(res, indent=2) + "\n").encode())
    return res


def load_translator(run_dir: Path, direction: Direction = "a2b", device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The generator of ``direction`` from the latest checkpoint of ``run_dir`` (eval mode, no gradients).

    Returns ``(generator, info)`` with ``info``: ``config`` (TranslateConfig), ``saved`` (the
    run's config.yaml), ``checkpoint`` (path), ``checkpoint_sha256``, ``step``.

    Raises
    ------
    ConfigError : an unknown direction.
    PathganError : not a translation run, or no checkpoint yet.
    """
    from pathgan.models._cyclegan import build_translator_generator
    from pathgan.train import load_checkpoint
    from pathgan.train.cyclegan import CHECKPOINT_KIND

    if direction not in get_args(Direction):
        raise ConfigError(f"--direction {direction!r} is not allowed; expected one of {get_args(Direction)}")
    run = RunDir.open(run_dir, "translate")
    cfg, saved = run.translate_config(), run.config
    path = run.require_checkpoint()
    dev = select_device(device)
    ckpt = load_checkpoint(path, map_location=dev)
    if ckpt.get("kind") != CHECKPOINT_KIND:
        raise PathganError(f"{path} is not a CycleGAN checkpoint (kind {ckpt.get('kind')!r})")
    gen = build_translator_generator(cfg.generator, ngf=cfg.ngf, n_blocks=cfg.g_res_blocks)
    gen.load_state_dict(ckpt["models"]["g_ab" if direction == "a2b" else "g_ba"])
    gen = gen.to(dev).eval().requires_grad_(False)
    return gen, {"config": cfg, "saved": saved, "checkpoint": path, "checkpoint_sha256": file_sha256(path),
                 "step": int(ckpt["step"])}


def _check_translatable(store: Any, saved: dict[str, Any], direction: Direction) -> None:
    """The store must be at the run's MPP and have the source domain's patch size."""
    data = saved.get("data", {})
    src = "a" if direction == "a2b" else "b"
    mpp = data.get("patch_mpp")
    if mpp is not None and not math.isclose(store.mpp, float(mpp), rel_tol=1e-3):
        raise ConfigError(f"{store.path}: patches at {store.mpp:g} um/px, but the run was trained at {mpp:g} um/px; "
                          "tile the slide at the run's MPP")
    allowed = data.get("domains", {}).get(src, {}).get("store_patch_px") or []
    if allowed and store.patch_px not in allowed:
        raise ConfigError(f"{store.path}: patch_px={store.patch_px}, but the run's domain {src.upper()} stores "
                          f"have patch_px {allowed}; tile the slide with --patch-px {allowed[0]}")
    if store.patch_px % 4:
        raise ConfigError(f"{store.path}: patch_px={store.patch_px} is not a multiple of 4 (the generator's "
                          "two 2x downsamplings need one)")


def translate_stores(
    run_dir: Path,
    stores: list[Path] | None,
    out: Path,
    *,
    direction: Direction = "a2b",
    device: str = "auto",
    batch_size: int = 32,
    png_dir: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[StatusRow]:
    """Translate every patch of each store into ``out/<store name>``, a store of the same schema.

    Coordinates, tissue fractions, pen fractions, thumbnail and masks are copied; blur and white
    fraction are recomputed from the translated pixels; the root attributes are the source's
    (slide id, MPP, tiling config, label, split ...) plus ``translation`` (run, direction,
    checkpoint, its sha256, step, source store). Each store is written under a temporary name and
    renamed when complete. ``stores=None`` means the run's own stores of the source domain (A for
    ``a2b``). With ``png_dir``, every translated patch is also saved as
    ``png_dir/<slide_id>/<index>_x<x>_y<y>.png`` (level-0 coordinates).

    Returns one :class:`~pathgan.stages._status.StatusRow` per store, ``translated`` or ``failed``:
    a missing or unreadable store, one at another MPP or patch size than the run's source domain,
    an output that exists (without ``overwrite``) or would replace its input, or a failure while
    writing is that store's row, and the other stores go on (as in ``tile`` and ``encode``).

    Raises
    ------
    ConfigError
        No stores given.
    PathganError
        Not a translation run, or no checkpoint.
    """
    from tqdm.auto import tqdm

    from pathgan import __version__
    from pathgan.store import PatchStore, temp_path_for

    if stores is None:
        stores = RunDir.open(run_dir, "translate").existing_stores("a" if direction == "a2b" else "b")
    if not stores:
        raise ConfigError("--stores: no stores given; expected <slide_id>.zarr patch stores or folders of them")
    gen, info = load_translator(run_dir, direction, device)
    out = Path(out)
    rows: list[StatusRow] = []
    todo: list[Any] = []
    for path, error in expand_each_store(stores, "--stores"):  # a bad store is a failed row; the others go on
        s = None
        try:
            if error:
                raise ConfigError(error)
            s = PatchStore(path)
            _check_translatable(s, info["saved"], direction)
            final = out / s.path.name
            if final.resolve() == s.path.resolve():
                raise ConfigError(f"--out {out}: {final} is the input store itself; choose another output folder")
            if final.exists() and not overwrite:
                raise ConfigError(f"{final} already exists; choose another --out or pass --overwrite")
            todo.append(s)
        except PathganError as err:
            rows.append(StatusRow(slide_id=s.slide_id if s is not None else Path(path).stem, status="failed",
                                  error=describe_error(err), store=str(path)))
    provenance = {"run": str(Path(run_dir).resolve()), "run_id": Path(run_dir).name, "direction": direction,
                  "checkpoint": info["checkpoint"].name, "checkpoint_sha256": info["checkpoint_sha256"],
                  "step": info["step"]}
    if todo:
        out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=sum(len(s) for s in todo), desc=f"translate {direction}", unit="patch",
              disable=not progress) as bar:
        for s in todo:
            t0 = time.perf_counter()
            final = out / s.path.name
            tmp = temp_path_for(final)
            try:
                _translate_one(s, tmp, final, gen, batch_size, png_dir, bar,
                               s.meta.replace(translation={**provenance, "source_store": str(s.path.resolve())},
                                              pathgan_version=__version__), overwrite)
            except Exception as err:  # a store that fails mid-way: its row says why; the others go on
                shutil.rmtree(tmp, ignore_errors=True)
                rows.append(StatusRow(slide_id=s.slide_id, status="failed", error=describe_error(err),
                                      seconds=round(time.perf_counter() - t0, 2), store=str(s.path)))
                continue
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            rows.append(StatusRow(slide_id=s.slide_id, status="translated", n_patches=len(s), store=str(s.path),
                                  out=str(final), seconds=round(time.perf_counter() - t0, 2)))
    return rows


def _translate_one(s: Any, tmp: Path, final: Path, gen: Any, batch_size: int, png_dir: Path | None, bar: Any,
                   attrs: Any, overwrite: bool) -> None:
    """Write the translation of store ``s`` under ``tmp``, then finalise it as ``final``."""
    from pathgan.data._transforms import to_float_nchw, to_uint8_nhwc
    from pathgan.store import WHITE_LEVEL, create_store, finalize_store, write_shard
    from pathgan.tissue import blur_scores, white_fractions
    from pathgan.train.cyclegan import translate_images

    per_shard, (codec, quality) = s.patches_per_shard, s.codec  # the input store's own layout
    create_store(tmp, coords_xy=s.coords, tissue_fraction=s.tissue_fraction,
                 pen_fraction=s.qc("pen_fraction"), patch_px=s.patch_px, patches_per_shard=per_shard,
                 codec=codec, jpeg_quality=quality or 90,
                 thumbnail=s.thumbnail(), tissue_mask=s.mask("tissue"), pen_mask=s.mask("pen"))
    for start in range(0, len(s), per_shard):  # whole shards: one write per shard
        raw = s.read(slice(start, min(start + per_shard, len(s))))
        images = to_uint8_nhwc(translate_images(gen, to_float_nchw(raw), batch_size))
        write_shard(tmp, start, images, blur_scores(images), white_fractions(images, WHITE_LEVEL))
        if png_dir is not None:
            _write_pngs(Path(png_dir) / s.slide_id, images, s.coords[start : start + len(images)], start)
        bar.update(len(images))
    finalize_store(tmp, final, attrs, overwrite=overwrite)


def _write_pngs(folder: Path, images: Any, coords: Any, start: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, (x, y)) in enumerate(zip(images, coords, strict=True)):
        Image.fromarray(img).save(folder / f"{start + i:06d}_x{int(x)}_y{int(y)}.png")


def _sample(paths: list[Path], n: int) -> tuple[Any, list[tuple[int, Any]]]:
    """Up to ``n`` whole patches spread evenly over the concatenation of ``paths``' stores:
    uint8 (k, P, P, 3) and the (store position, indices) read, so the same rows can be read elsewhere."""
    import numpy as np

    from pathgan.store import PatchStore

    stores = [PatchStore(p) for p in paths]
    sizes = np.array([len(s) for s in stores])
    total = int(sizes.sum())
    pick = np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(np.int64)) if total else np.zeros(0, int)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parts, where = [], []
    for k, s in enumerate(stores):
        idx = pick[(pick >= offsets[k]) & (pick < offsets[k + 1])] - offsets[k]
        if len(idx):
            parts.append(s.read(idx))
            where.append((k, idx))
    return (np.concatenate(parts) if parts else np.zeros((0, 1, 1, 3), np.uint8)), where


def evaluate_translated(rows: list[StatusRow], targets: list[Path], *, n: int = 256, seed: int = 0,
                        out: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Translation metrics of translated stores against their sources and the target domain.

    Parameters
    ----------
    rows : the rows of :func:`translate_stores` (source ``store`` and translated ``out`` paths).
    targets : stores (or folders) of the target domain.
    n : patches drawn (evenly spaced) from the sources (the same rows of the translations) and
        from the targets.
    seed : seeds the shuffled baseline and the split of the targets into halves.
    out : when given, the result is written there as JSON (atomically).

    Returns
    -------
    :func:`pathgan.metrics._translation.translation_metrics` of (sources, translations, targets),
    plus ``sources``, ``translated``, ``targets`` (paths) and ``extra``.

    Raises
    ------
    ConfigError : fewer than 2 patches on either side.
    """
    import numpy as np

    from pathgan.metrics import translation_metrics
    from pathgan.store import PatchStore

    target_paths = expand_stores(targets, "--against")
    rows = [r for r in rows if not r.failed]
    if not rows:
        raise ConfigError("no translated store to evaluate (every store failed)")
    src, where = _sample([Path(r.store) for r in rows], n)
    translated = [PatchStore(Path(r.out)) for r in rows]
    fake = np.concatenate([translated[k].read(idx) for k, idx in where]) if where else src
    tgt, _ = _sample(target_paths, n)
    if len(src) < 2 or len(tgt) < 2:
        raise ConfigError(f"evaluation needs at least 2 patches per side; got {len(src)} translated and "
                          f"{len(tgt)} target patches")
    res: dict[str, Any] = translation_metrics(src, fake, tgt, seed=seed)
    res.update(sources=[r.store for r in rows], translated=[r.out for r in rows],
               targets=[str(p) for p in target_paths], **(extra or {}))
    if out is not None:
        atomic_write_bytes(Path(out), (json.dumps(res, indent=2) + "\n").encode())
    return res
