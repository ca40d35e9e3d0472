"""``pathgan export-model`` (registered on the group in :mod:`pathgan.cli._main`): a trained run as a
folder someone else can load, with its model card."""

from __future__ import annotations

from pathlib import Path

import click

from pathgan.cli._main import main
from pathgan.errors import PathganError

__all__: list[str] = []


@main.command("export-model",
              short_help="Write a run's model as a shareable folder (safetensors + card).")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run directory of `pathgan train-latent` (its latest checkpoint; the encoder when fitted).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to create for the exported model.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="float32 keeps the weights bit for bit; float16 halves the files (loaded back as float32).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export at --out (only once the new one is complete).")
def export_model_command(run_dir: Path, out_dir: Path, dtype: str, overwrite: bool) -> None:
    """Write RUN's EMA generator + mapping network (+ encoder when fitted) for others to use.

    OUT gets generator.safetensors and encoder.safetensors (tensors only, no pickle), config.json
    (model config, data facts, model id, sha256 of each file) and MODEL_CARD.md (architecture and
    size, training data, time and hardware, KID/FID with the held-out set they were measured on,
    intended use, limitations). LatentModel.load, encode, export-synthetic, evaluate (with
    --stores), classify and roi accept the folder in place of the run.

    \b
    Examples:
      pathgan export-model --run runs/00003-pathologygan-64-cpu --out models/tissue-64
      pathgan export-model --run runs/00003-pathologygan-64-cpu --out models/tissue-64-fp16 --dtype float16
    """
    from pathgan.export import export_model, open_model

    try:
        out = export_model(run_dir, out_dir, dtype=dtype, overwrite=overwrite)  # type: ignore[arg-type]
        bundle = open_model(out)  # what a user will load: read back and checked before saying it is done
    except PathganError as err:
        raise click.ClickException(str(err)) from err
    files = sorted(p for p in out.iterdir() if p.is_file())
    size = sum(p.stat().st_size for p in files)
    click.echo(f"model {bundle.model_id} ({bundle.model_cfg.name}, {bundle.dtype}"
               f"{', with encoder' if bundle.has_encoder else ', no encoder'}) in {out}: "
               + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in files)
               + f"; {size / 1e6:.2f} MB in all")
