"""``pathgan`` commands of the translate layer (registered on the group in :mod:`pathgan.cli._main`):
``train-translate`` (CycleGAN between two domains of patch stores) and ``translate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pathgan.cli._main import _load_dataclass_config, _parse_sets, main
from pathgan.cli._status import echo_status
from pathgan.errors import PathganError

__all__: list[str] = []


@main.command("train-translate", short_help="Train a CycleGAN (Zhu et al. 2017) translating stain/site A <-> B.")
@click.option("--a", "a_stores", multiple=True, type=click.Path(path_type=Path),
              help="Domain A: patch stores (<slide_id>.zarr) or folders of them; repeatable.")
@click.option("--b", "b_stores", multiple=True, type=click.Path(path_type=Path),
              help="Domain B: patch stores or folders of them; repeatable.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML of TranslateConfig fields, e.g. configs/translate/cyclegan-cpu.yaml.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one TranslateConfig field; repeatable.")
@click.option("--runs", "runs_root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Folder where numbered run directories are created.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue this run directory from its latest checkpoint (--set steps=N extends it; "
                   "--a/--b default to the run's stores).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration and exit.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def train_translate_command(a_stores: tuple[Path, ...], b_stores: tuple[Path, ...], config_path: Path | None,
                            sets: tuple[str, ...], runs_root: Path, resume: Path | None, device: str, dry_run: bool,
                            progress: bool) -> None:
    """Train a CycleGAN (Zhu et al. 2017) translating stain/site A <-> B; writes a run directory.

    Both domains must be tiled at the same MPP. The run directory gets config.yaml, stats.jsonl,
    sample grids (rows A, A->B, A->B->A, B, B->A, B->A->B), checkpoints and, at the end,
    eval.json (stain distances before/after and haematoxylin SSIM; see the README).

    \b
    Examples:
      pathgan train-translate --a out/tiles/CMU-1-Small-Region.zarr --b out/tiles/TCGA-CR-7395-01A-01-TS1.zarr \\
          --config configs/translate/cyclegan-cpu.yaml
      pathgan train-translate --a site1/ --b site2/ --config configs/translate/cyclegan-256.yaml --device cuda
      pathgan train-translate --resume runs/00003-cyclegan-cpu --set steps=6000
    """
    import yaml

    from pathgan.config import TranslateConfig, to_dict

    try:
        overrides = _parse_sets(sets)
        steps_override = None
        name = config_path.stem if config_path is not None else "cyclegan"
        if resume is not None:
            from pathgan.runs import RunDir

            unknown = sorted(set(overrides) - {"steps"})
            if unknown or config_path is not None:
                raise click.UsageError("--resume continues the saved configuration; only --set steps=N may change "
                                       f"(got {'--config and ' if config_path else ''}{unknown or ''})")
            cfg = RunDir.open(resume, "translate").translate_config()
            steps_override = overrides.get("steps")
        else:
            if not a_stores or not b_stores:
                raise click.UsageError("give both domains: --a STORES and --b STORES (stores or folders of them)")
            cfg = _load_dataclass_config(TranslateConfig, config_path, overrides)
        if dry_run:
            click.echo(yaml.safe_dump({"translate": to_dict(cfg)}, sort_keys=False))
            return
        from pathgan.stages.translate import train_translate

        run_dir = train_translate(list(a_stores), list(b_stores), cfg, runs_root=runs_root, name=name, device=device,
                                  resume=resume, steps_override=steps_override, progress=progress)
    except PathganError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"run directory: {run_dir}  (samples/, checkpoints/, stats.jsonl, eval.json)")


@main.command("translate")
@click.argument("stores", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run directory of `pathgan train-translate`.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b: STORES are domain A, translated to look like B; b2a the reverse.")
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
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
@click.option("--overwrite", is_flag=True, help="Replace translated stores that already exist in OUT.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def translate_command(stores: tuple[Path, ...], run_dir: Path, direction: str, out_dir: Path, png_dir: Path | None,
                      do_eval: bool, against: tuple[Path, ...], n_eval: int, batch_size: int, device: str,
                      overwrite: bool, progress: bool) -> None:
    """Translate every patch of STORES with RUN's generator into new stores under OUT.

    STORES are patch stores (<slide_id>.zarr) or folders of them, tiled like the run's source
    domain (same MPP and patch size). Each output store has the inputs' schema, coordinates and
    tissue fractions, and records the run, direction and checkpoint sha256 in its attributes.

    \b
    Examples:
      pathgan translate --run runs/00003-cyclegan-cpu out/tiles/CMU-1-Small-Region.zarr --out out/translated --eval
      pathgan translate --run runs/00003-cyclegan-cpu --direction b2a site2/ --out out/site2-as-site1
    """
    from pathgan.stages.translate import evaluate_translated, translate_stores

    try:
        rows = translate_stores(run_dir, list(stores), out_dir, direction=direction,  # type: ignore[arg-type]
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
    except PathganError as err:
        raise click.ClickException(str(err)) from err
    if any(r.failed for r in rows):
        sys.exit(1)
