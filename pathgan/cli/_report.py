"""``pathgan report`` (registered on the group in :mod:`pathgan.cli._main`): one self-contained HTML
page for a tiled batch or a training run."""

from __future__ import annotations

from pathlib import Path

import click

from pathgan.cli._main import main
from pathgan.errors import PathganError

__all__: list[str] = []


@main.command("report", short_help="One HTML page for a tiled batch or a training run.")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write [PATH/report.html].")
def report_command(path: Path, out_file: Path | None) -> None:
    """Write one self-contained HTML page (no server, no network) for PATH and print its path.

    PATH is a `pathgan tile --out` folder (one sortable, filterable row per slide: preview, MPP,
    patches, tissue area, QC histograms, time, errors; the batch summary on top), a train-latent or
    train-translate run directory, or a train-encoder folder RUN/encoder (curves from stats.jsonl,
    KID/FID against step, sample grids to scrub through, checkpoints, provenance, config). Rerun it
    while training goes on to update the page.

    \b
    Examples:
      pathgan report out/tiles
      pathgan report runs/00003-pathologygan-64-cpu
      pathgan report runs/00003-pathologygan-64-cpu/encoder --out encoder.html
    """
    from pathgan.report import write_report

    try:
        written = write_report(path, out_file)
    except PathganError as err:
        raise click.ClickException(str(err)) from err
    click.echo(str(written))
