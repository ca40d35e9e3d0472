"""Which kind of folder a path is, and writing its page (atomically) where it belongs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pathgan._io import atomic_write_text
from pathgan.errors import PathganError
from pathgan.report._batch import TILE_STATUS_FILE, gather_batch
from pathgan.report._run import gather_run, is_encoder_dir
from pathgan.runs import CONFIG_FILE

__all__ = ["REPORT_FILE", "ReportKind", "report_kind", "write_batch_report", "write_report", "write_run_report"]

REPORT_FILE = "report.html"
ReportKind = Literal["batch", "run"]


def report_kind(path: str | Path) -> ReportKind:
    """``"run"`` for a run directory (``config.yaml``) or a train-encoder folder (``RUN/encoder/``),
    ``"batch"`` for a ``pathgan tile`` output folder (``tile_status.csv`` or ``*.zarr`` stores).

    Raises
    ------
    PathganError : ``path`` does not exist, is a file or a single store, or is none of these folders.
    """
    path = Path(path)
    allowed = (f"a pathgan tile --out folder ({TILE_STATUS_FILE} or <slide_id>.zarr stores), a run directory "
               f"({CONFIG_FILE}) or a train-encoder folder (RUN/encoder)")
    if not path.exists():
        raise PathganError(f"{path}: does not exist; expected {allowed}")
    if not path.is_dir():
        raise PathganError(f"{path}: is a file; expected {allowed}")
    if path.suffix == ".zarr":
        raise PathganError(f"{path}: is one patch store; give the folder that holds it ({path.parent}) "
                           "for a report of the whole batch")
    if (path / CONFIG_FILE).is_file() or is_encoder_dir(path):
        return "run"
    if (path / TILE_STATUS_FILE).is_file() or any(p.is_dir() for p in path.glob("*.zarr")):
        return "batch"
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(found[:5]) + (f", ... ({len(found)} entries)" if len(found) > 5 else "")
    raise PathganError(f"{path}: holds no {TILE_STATUS_FILE}, no *.zarr store and no {CONFIG_FILE} "
                       f"(found: {shown or 'nothing'}); expected {allowed}")


def _target(path: Path, out: str | Path | None) -> Path:
    target = Path(out) if out is not None else path / REPORT_FILE
    if target.is_dir():
        raise PathganError(f"--out {target}: is a folder; expected an HTML file name (e.g. {target / REPORT_FILE})")
    return target


def _write(target: Path, html: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, html)
    except OSError as err:
        raise PathganError(f"{target}: cannot write the report ({err.strerror or err})") from err


def write_batch_report(stores_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the batch page of a ``pathgan tile`` output folder; returns its path
    (default ``<stores_dir>/report.html``). Raises :class:`PathganError` for a folder that is not one."""
    from pathgan.report._batch_page import render_batch

    folder = Path(stores_dir)
    target = _target(folder, out)
    _write(target, render_batch(gather_batch(folder), target))
    return target


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run page of a train-latent / train-translate run or a train-encoder folder; returns
    its path (default ``<run_dir>/report.html``). Rerun it while training goes on to update it."""
    from pathgan.report._run_page import render_run

    folder = Path(run_dir)
    report = gather_run(folder)
    target = _target(folder, out)
    _write(target, render_run(report))
    return target


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """:func:`write_batch_report` or :func:`write_run_report`, whichever :func:`report_kind` says."""
    if report_kind(path) == "run":
        return write_run_report(path, out)
    return write_batch_report(path, out)
