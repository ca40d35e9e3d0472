"""``pathgan`` commands of the translate layer (registered on the group in :mod:`pathgan.cli._main`):
``train-translate`` (CycleGAN between two domains of patch stores) and ``translate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pathgan.cli._main import _out_or_legacy, main
from pathgan.cli._options import (
    config_option,
    deprecated,
    device_option,
    legacy_stores_argument,
    load_config,
    parse_sets,
    pick_stores,
    progress_option,
    stores_option,
)
from pathgan.cli._status import echo_status

__all__: list[str] = []


def _domain(new: tuple[Path, ...], old: tuple[Path, ...], name: str) -> list[Path]:
    """``--stores-a`` (``-b``), or the deprecated ``--a`` (``--b``)."""
    if old:
        if new:
            raise click.UsageError(f"give --stores-{name} (or the deprecated --{name}), not both")
        deprecated(f"--{name}", f"--stores-{name}")
        return list(old)
    return list(new)


@main.command("train-translate", short_help="Train a CycleGAN between two stain/site domains.")
@stores_option("Domain A: patch stores (<slide_id>.zarr) or folders of them; repeatable [with --resume: the run's].",
               name="--stores-a", dest="a_stores")
@stores_option("Domain B: patch stores or folders of them; repeatable [with --resume: the run's].",
               name="--stores-b", dest="b_stores")
@click.option("--a", "legacy_a", multiple=True, type=click.Path(path_type=Path), hidden=True)
@click.option("--b", "legacy_b", multiple=True, type=click.Path(path_type=Path), hidden=True)
@config_option("translate", "TranslateConfig")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one TranslateConfig field; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder where numbered run directories are created [runs].")
@click.option("--runs", "legacy_runs", type=click.Path(file_okay=False, path_type=Path), hidden=True)
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue this run directory from its latest checkpoint (--set steps=N extends it).")
@device_option
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration and exit.")
@progress_option
def train_translate_command(a_stores: tuple[Path, ...], b_stores: tuple[Path, ...], legacy_a: tuple[Path, ...],
                            legacy_b: tuple[Path, ...], config: str | None, sets: tuple[str, ...], out_dir: Path | None,
                            legacy_runs: Path | None, resume: Path | None, device: str, dry_run: bool,
                            progress: bool) -> None:
    """Train a CycleGAN (Zhu et al. 2017) translating stain/site A <-> B; writes a run directory.

    Both domains must be tiled at the same MPP. The run directory gets config.yaml, stats.jsonl,
    sample grids (rows A, A->B, A->B->A, B, B->A, B->A->B), checkpoints and, at the end,
    eval.json (stain distances before/after and haematoxylin SSIM; see the README).

    \b
    Examples:
      pathgan train-translate --stores-a out/tiles/CMU-1-Small-Region.zarr \\
          --stores-b out/tiles/TCGA-CR-7395-01A-01-TS1.zarr --config cyclegan-cpu
      pathgan train-translate --stores-a site1/ --stores-b site2/ --config cyclegan-256 --device cuda
      pathgan train-translate --resume runs/00003-cyclegan-cpu --set steps=6000
    """
    import yaml

    from pathgan.config import TranslateConfig, to_dict

    a = _domain(a_stores, legacy_a, "a")
    b = _domain(b_stores, legacy_b, "b")
    runs_root = _out_or_legacy(out_dir, legacy_runs, Path("runs"))
    overrides = parse_sets(sets)
    steps_override = None
    name = Path(config).stem if config is not None else "cyclegan"
    if resume is not None:
        from pathgan.runs import RunDir

        unknown = sorted(set(overrides) - {"steps"})
        if unknown or config is not None:
            raise click.UsageError("--resume continues the saved configuration; only --set steps=N may change "
                                   f"(got {'--config and ' if config else ''}{unknown or ''})")
        cfg = RunDir.open(resume, "translate").translate_config()
        if "steps" in overrides:
            cfg = load_config(TranslateConfig, "translate", None, {"steps": overrides["steps"]}, base=to_dict(cfg))
            steps_override = cfg.steps
    else:
        if not a or not b:
            raise click.UsageError("give both domains: --stores-a STORES and --stores-b STORES (stores or folders "
                                   "of them)")
        cfg = load_config(TranslateConfig, "translate", config, overrides)
    if dry_run:
        click.echo(yaml.safe_dump({"translate": to_dict(cfg)}, sort_keys=False))
        return
    from pathgan.stages.translate import train_translate

    run_dir = train_translate(a, b, cfg, runs_root=runs_root, name=name, device=device, resume=resume,
                              steps_override=steps_override, progress=progress)
    click.echo(f"run directory: {run_dir}  (samples/, checkpoints/, stats.jsonl, eval.json)")


@main.command("translate", short_help="Translate patch stores with a train-translate run.")
@legacy_stores_argument
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run directory of `pathgan train-translate`.")
@stores_option("Patch stores or folders of them, tiled like the run's source domain; repeatable [the run's own "
               "stores of the source domain].")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b: the stores are domain A, translated to look like B; b2a the reverse.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the translated stores (same <slide_id>.zarr names as the inputs).")
@click.option("--png-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also save every translated patch as PNG under PNG_DIR/<slide_id>/.")
@click.option("--eval", "do_eval", is_flag=True,
              help="Write OUT/eval.json: stain distances to the other domain and haematoxylin SSIM to the inputs.")
@click.option("--against", multiple=True, type=click.Path(path_type=Path),
              help="Target-domain stores for --eval [the run's stores of the other domain]; repeatable.")
@click.option("--n-eval", type=click.IntRange(min=2), default=256, show_default=True,
              help="Patches per side for --eval.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Patches per generator call.")
@device_option
@click.option("--overwrite", is_flag=True, help="Replace translated stores that already exist in OUT.")
@progress_option
def translate_command(legacy_stores: tuple[Path, ...], run_dir: Path, stores: tuple[Path, ...], direction: str,
                      out_dir: Path, png_dir: Path | None, do_eval: bool, against: tuple[Path, ...], n_eval: int,
                      batch_size: int, device: str, overwrite: bool, progress: bool) -> None:
    """Translate every patch of the stores with RUN's generator into new stores under OUT.

    The stores must be tiled like the run's source domain (same MPP and patch size). Each output
    store has the inputs' schema, coordinates and tissue fractions, and records the run, direction
    and checkpoint sha256 in its attributes.

    \b
    Examples:
      pathgan translate --run runs/00003-cyclegan-cpu --stores out/tiles/CMU-1-Small-Region.zarr --out out/translated --eval
      pathgan translate --run runs/00003-cyclegan-cpu --direction b2a --stores site2/ --out out/site2-as-site1
    """
    from pathgan.stages.translate import evaluate_translated, translate_stores

    chosen = pick_stores(stores, legacy_stores)
    rows = translate_stores(run_dir, chosen or None, out_dir, direction=direction,  # type: ignore[arg-type]
                            device=device, batch_size=batch_size, png_dir=png_dir, overwrite=overwrite,
                            progress=progress)
    echo_status(rows, "store", lambda r: Path(r.store).name)
    if do_eval and any(not r.failed for r in rows):
        from pathgan.runs import RunDir

        targets = list(against) or RunDir.open(run_dir, "translate").stores("b" if direction == "a2b" else "a")
        res = evaluate_translated(rows, targets, n=n_eval, out=out_dir / "eval.json",
                                  extra={"run": str(run_dir), "direction": direction})
        click.echo(f"colour W1 to target {res['hist_w1_before']:.4f} -> {res['hist_w1_after']:.4f} "
                   f"(target halves {res['hist_w1_floor']:.4f}); mean H&E OD distance {res['hed_mean_before']:.4f} "
                   f"-> {res['hed_mean_after']:.4f}; H-channel SSIM {res['ssim_h']:.3f} "
                   f"(unrelated pairs {res['ssim_h_shuffled']:.3f})")
        click.echo(f"written: {out_dir / 'eval.json'}")
    if any(r.failed for r in rows):
        sys.exit(1)
