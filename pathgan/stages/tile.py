"""``pathgan tile``: slides -> one Zarr patch store per slide, in parallel on Dask.

Per slide: a *plan* task (open, MPP, thumbnail, masks, grid, temporary store), one *shard* task per
Zarr shard (decode, cut, score, write), then a *finish* task (attrs, atomic rename). Slides are
pipelined: while one slide's shards run, the next slides are planned. A failing slide is recorded
in the status table and the batch goes on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pathgan._io import atomic_write_text
from pathgan._lock import folder_lock
from pathgan.config import TileConfig
from pathgan.errors import StainError, StoreError
from pathgan.manifest import SlideEntry
from pathgan.stages._status import StatusRow
from pathgan.stages._tile_tasks import (
    comparable_config,
    describe_error,
    extract_shard,
    finish_slide,
    guarded,
    plan_slide,
    source_fingerprint,
    write_preview,
)
from pathgan.store import partial_stores, read_store_attrs

__all__ = ["STATUS_FILE", "SlideStatus", "Status", "fit_stain_target", "tile_slides", "write_status_table"]

Status = Literal["done", "skipped", "no_tissue", "failed"]
STATUS_FILE = "tile_status.csv"
_LOG = logging.getLogger(__name__)


SlideStatus = StatusRow  # tile's rows: one per slide (the name kept for callers of pathgan.stages)


@dataclass
class _Slide:
    entry: SlideEntry
    start: float = field(default_factory=time.perf_counter)
    plan: dict[str, Any] | None = None
    pending: set[Any] = field(default_factory=set)
    tiles_decoded: int = 0
    failed: bool = False


def fit_stain_target(cfg: TileConfig) -> dict[str, Any] | None:
    """Fit ``cfg.stain_normalize`` to ``cfg.stain_target`` once for the whole run.

    Returns None without stain normalisation, else a JSON-ready dict: ``method``, ``target`` (resolved
    path), ``target_sha256`` and ``params`` (the fitted normaliser as a few numbers, see
    :func:`pathgan.stain.normaliser_from_params`). It travels to the shard tasks instead of any
    pixels and is stored in the store attrs as ``stain``. A transparent target is flattened onto white.

    Raises
    ------
    StainError : the target cannot be read as an image, or has too little tissue; the message names
        the path.
    """
    if cfg.stain_normalize is None or cfg.stain_target is None:
        return None
    from PIL import Image

    from pathgan.stain import make_normaliser

    path = Path(cfg.stain_target).expanduser()
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    except (OSError, ValueError) as err:  # missing file, not an image (PIL's UnidentifiedImageError is an OSError)
        raise StainError(f"stain_target {path}: cannot be read as an RGB image ({err})") from err
    try:
        fitted = make_normaliser(cfg.stain_normalize).fit(rgb)
    except StainError as err:
        raise StainError(f"stain_target {path}: {err}") from err
    description = {"method": cfg.stain_normalize, "target": str(path.resolve()),
                   "target_sha256": hashlib.sha256(data).hexdigest(), "params": fitted.params()}
    return dict(json.loads(json.dumps(description)))  # as it reads back from the store attrs


def _check_existing(final: Path, cfg: TileConfig, entry: SlideEntry, stain: dict[str, Any] | None) -> SlideStatus | None:
    """Status for a complete store that matches this run, or a failure when it does not match."""
    if not final.exists():
        return None
    try:
        attrs = read_store_attrs(final)
    except StoreError as err:
        return SlideStatus(slide_id=entry.slide_id, status="failed", error=f"{err}; rerun with --overwrite")
    if attrs.get("config") != comparable_config(cfg, entry):
        return SlideStatus(
            slide_id=entry.slide_id,
            status="failed",
            error=f"{final} was written with another configuration; rerun with --overwrite to replace it",
        )
    if attrs.get("stain") != stain:
        return SlideStatus(
            slide_id=entry.slide_id,
            status="failed",
            error=f"{final} was written with another stain normalisation or target image; rerun with --overwrite",
        )
    if {k: attrs["source"].get(k) for k in ("size_bytes", "sha256_first_mib")} != source_fingerprint(entry.path):
        return SlideStatus(
            slide_id=entry.slide_id,
            status="failed",
            error=f"{final} was made from a different file than {entry.path}; rerun with --overwrite",
        )
    n = int(attrs["n_patches"])
    return SlideStatus(slide_id=entry.slide_id, status="skipped", n_patches=n, store=str(final))


def tile_slides(
    entries: Sequence[SlideEntry],
    out_dir: str | Path,
    cfg: TileConfig,
    *,
    client: Any,
    overwrite: bool = False,
    progress: bool = True,
    on_status: Callable[[SlideStatus], None] | None = None,
) -> list[SlideStatus]:
    """Tile ``entries`` into ``out_dir/<slide_id>.zarr`` with the Dask ``client``.

    Complete stores that match ``cfg`` and the source file are skipped unless ``overwrite``;
    leftovers of interrupted runs are removed and redone. Never raises for a bad slide: every
    slide gets a :class:`SlideStatus`, and the table is also written to ``out_dir/tile_status.csv``,
    then the batch's HTML page to ``out_dir/report.html`` (:mod:`pathgan.report`; a failure there
    is a logged warning, never an error).
    With ``cfg.stain_normalize`` the target is fitted here, once (:func:`fit_stain_target`), and
    every patch is normalised to it before it is stored.

    The folder is locked for the run (``out_dir/.pathgan.lock``): a second ``tile`` into it fails
    fast with :class:`~pathgan.errors.LockError`, and a lock left by a killed run is recovered.

    Raises
    ------
    LockError : another live process is tiling into ``out_dir``.
    StainError : the stain target cannot be read or has too little tissue (before any slide is touched).
    """
    out = Path(out_dir)
    with folder_lock(out, "tile"):
        return _tile_locked(entries, out, cfg, client=client, overwrite=overwrite, progress=progress,
                            on_status=on_status)


def _tile_locked(
    entries: Sequence[SlideEntry],
    out: Path,
    cfg: TileConfig,
    *,
    client: Any,
    overwrite: bool,
    progress: bool,
    on_status: Callable[[SlideStatus], None] | None,
) -> list[SlideStatus]:
    from distributed import as_completed
    from tqdm.auto import tqdm

    stain = fit_stain_target(cfg)
    results: dict[str, SlideStatus] = {}

    def record(status: SlideStatus) -> None:
        results[status.slide_id] = status
        if on_status is not None:
            on_status(status)

    todo: list[SlideEntry] = []
    for entry in entries:
        final = out / f"{entry.slide_id}.zarr"
        for leftover in partial_stores(final):
            shutil.rmtree(leftover, ignore_errors=True)
        existing = None if overwrite else _check_existing(final, cfg, entry, stain)
        if existing is not None:
            record(existing)
        else:
            todo.append(entry)

    n_workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
    max_in_flight = max(2, 2 * n_workers)  # bounds driver memory (coordinates) on huge batches
    slides: dict[str, _Slide] = {}
    tasks: dict[Any, tuple[str, str]] = {}  # future -> (kind, slide_id)
    queue = list(todo)
    bar_slides = tqdm(total=len(entries), desc="slides", unit="slide", disable=not progress, position=0)
    bar_slides.update(len(results))
    bar_patches = tqdm(total=0, desc="patches", unit="patch", disable=not progress, position=1)
    pool = as_completed()

    def submit(kind: str, sid: str, fn: Callable[..., Any], *args: Any) -> None:
        fut = client.submit(guarded, fn, *args, pure=False, key=f"{kind}-{sid}-{len(tasks)}-{time.time_ns()}")
        tasks[fut] = (kind, sid)
        slides[sid].pending.add(fut)
        pool.add(fut)

    def launch() -> None:
        while queue and sum(not s.failed for s in slides.values()) < max_in_flight:
            entry = queue.pop(0)
            slides[entry.slide_id] = _Slide(entry=entry)
            submit("plan", entry.slide_id, plan_slide, entry, str(out), cfg, stain)

    def close(sid: str, status: SlideStatus) -> None:
        record(status)
        slides.pop(sid, None)
        bar_slides.update(1)
        launch()

    def fail(sid: str, err: BaseException | str) -> None:
        slide = slides[sid]
        slide.failed = True
        for fut in slide.pending:
            fut.cancel()
        if slide.plan is not None:
            shutil.rmtree(slide.plan["tmp"], ignore_errors=True)
        close(sid, SlideStatus(slide_id=sid, status="failed", seconds=time.perf_counter() - slide.start,
                               error=err if isinstance(err, str) else describe_error(err)))

    launch()
    for fut in pool:
        kind, sid = tasks.pop(fut)
        slide = slides.get(sid)
        if slide is None or slide.failed:
            continue
        slide.pending.discard(fut)
        if fut.status != "finished":
            try:
                fut.result()
            except BaseException as err:  # every failure becomes a status row, never a crash
                fail(sid, err)
            continue
        result = fut.result()
        if isinstance(result, dict) and "error" in result:
            fail(sid, result["error"])
            continue
        if kind == "plan":
            slide.plan = result
            bar_patches.total += len(result["coords"])
            bar_patches.refresh()
            submit("preview", sid, write_preview, result, cfg.patches_per_shard)
            for start, stop in result["shards"]:
                submit("shard", sid, extract_shard, result["path"], result["backend"], result["geometry"],
                       result["tmp"], start, result["coords"][start:stop], stain)
        elif kind == "shard":
            slide.tiles_decoded += result["tiles_decoded"]
            bar_patches.update(result["n"])
        if kind != "finish" and not slide.pending:
            submit("finish", sid, finish_slide, slide.plan, slide.tiles_decoded, cfg, overwrite)
        elif kind == "finish":
            assert slide.plan is not None
            n = len(slide.plan["coords"])
            close(sid, SlideStatus(slide_id=sid, status="done" if n else "no_tissue", n_patches=n,
                                   seconds=time.perf_counter() - slide.start, store=slide.plan["final"],
                                   error="" if n else "no patch passed the tissue and pen thresholds"))
    bar_patches.close()
    bar_slides.close()
    ordered = [results[e.slide_id] for e in entries]
    write_status_table(out / STATUS_FILE, ordered)
    _write_report(out)
    return ordered


def _write_report(out: Path) -> None:
    """``out/report.html`` for the batch. The stores and the status table are complete by now, so a
    page that cannot be drawn never fails the batch: a warning says why, and ``pathgan report``
    can draw it later."""
    from pathgan.report import REPORT_FILE, write_batch_report

    try:
        write_batch_report(out)
    except Exception as err:  # any failure of an optional page must not turn a finished batch into an error
        _LOG.warning("pathgan tile: could not write %s (%s: %s); the stores and %s are complete, "
                     "retry with: pathgan report %s", out / REPORT_FILE, type(err).__name__, err, STATUS_FILE, out)


def write_status_table(path: Path, rows: Sequence[SlideStatus]) -> None:
    """CSV with columns slide_id, status, n_patches, seconds, error, store (atomic write)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["slide_id", "status", "n_patches", "seconds", "error", "store"])
    for r in rows:
        w.writerow([r.slide_id, r.status, r.n_patches, f"{r.seconds:.2f}", r.error, r.store])
    atomic_write_text(path, buf.getvalue())


