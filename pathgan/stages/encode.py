"""``pathgan encode``: a trained run's encoder -> ``latents/<run_id>`` in every patch store.

Per store, rows are encoded in store order, ``batch_size`` patches per model call, and written one
Zarr chunk (``rows_per_chunk`` rows) at a time, so an interrupted run resumes at the first chunk
that was not written. The next batch is read (and JPEG-decoded) in a thread while the model works
on the current one. A store that fails is recorded in the status rows and the others go on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from pathgan import __version__
from pathgan.errors import ConfigError, ShapeError
from pathgan.stages._status import StatusRow, describe_error
from pathgan.store import (
    LatentWriter,
    PatchStore,
    check_run_id,
    expand_each_store,
    open_latents_for_write,
    read_store_attrs,
)

__all__ = ["EncodeStatus", "LatentEncoder", "encode_run", "encode_stores"]

EncodeStatus = Literal["encoded", "skipped", "failed"]


class LatentEncoder(Protocol):
    """What :func:`encode_stores` needs from a model (``pathgan.latents.LatentModel`` is one)."""

    @property
    def run_id(self) -> str:
        """Name of the latents array: letters, digits, '.', '_', '-'."""
        ...

    @property
    def w_dim(self) -> int: ...

    def provenance(self) -> dict[str, Any]:
        """JSON-safe description; must hold ``checkpoint_sha256`` (and ``encoder_sha256``)."""
        ...

    def encode_store_batch(self, patches: np.ndarray, *, refine_steps: int = 0) -> np.ndarray:
        """uint8 [B, P, P, 3] patches as stored -> float32 [B, w_dim].

        ``refine_steps`` is passed only when it is > 0, so encoders without refinement may omit it.
        """
        ...


def _row(store: Path, status: EncodeStatus, *, n_patches: int = 0, seconds: float = 0.0, error: str = "") -> StatusRow:
    name = Path(store).name
    return StatusRow(slide_id=name[: -len(".zarr")] if name.endswith(".zarr") else name, status=status,
                     n_patches=n_patches, seconds=seconds, error=error, store=str(store))


def _encode_batch(model: LatentEncoder, patches: np.ndarray, refine_steps: int) -> np.ndarray:
    # refine_steps is passed only when asked for, so encoders without refinement work too.
    raw = model.encode_store_batch(patches, refine_steps=refine_steps) if refine_steps else model.encode_store_batch(patches)
    out = np.asarray(raw)
    if out.shape != (len(patches), model.w_dim) or not np.issubdtype(out.dtype, np.floating):
        raise ShapeError(
            f"the model's encode_store_batch returned {out.dtype} {list(out.shape)} for {len(patches)} patches; "
            f"expected float32 [{len(patches)}, {model.w_dim}]"
        )
    return out.astype(np.float32, copy=False)


def _encode_one(model: LatentEncoder, store: PatchStore, writer: LatentWriter, *, batch_size: int,
                refine_steps: int, bar: Any) -> None:
    """Encode rows ``[writer.rows_done, n)`` of ``store`` and finish the writer."""
    n, chunk = writer.n_rows, writer.rows_per_chunk
    spans = [
        (s, min(s + batch_size, c + chunk, n))
        for c in range(writer.rows_done, n, chunk)
        for s in range(c, min(c + chunk, n), batch_size)
    ]
    parts: list[np.ndarray] = []
    chunk_start = writer.rows_done
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pathgan-encode-read") as pool:
        pending: Future[np.ndarray] | None = pool.submit(store.read, slice(*spans[0])) if spans else None
        for i, (start, stop) in enumerate(spans):
            assert pending is not None
            patches = pending.result()  # uint8 [b, P, P, 3]
            pending = pool.submit(store.read, slice(*spans[i + 1])) if i + 1 < len(spans) else None
            parts.append(_encode_batch(model, patches, refine_steps))
            bar.update(stop - start)
            if stop == min(chunk_start + chunk, n):
                writer.write(chunk_start, np.concatenate(parts))
                parts, chunk_start = [], stop
    writer.finish()


def encode_stores(
    model: LatentEncoder,
    stores: Sequence[Path],
    *,
    batch_size: int = 64,
    refine_steps: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    rows_per_chunk: int = 1024,
) -> list[StatusRow]:
    """Write ``latents/<model.run_id>`` (float32 [N, w_dim]) into every store.

    Parameters
    ----------
    model
        A :class:`LatentEncoder`, e.g. ``pathgan.latents.LatentModel.load(run_dir)``.
    stores
        Patch stores (``*.zarr``) or folders holding them.
    batch_size
        Patches per ``encode_store_batch`` call.
    refine_steps
        Optimisation steps after the encoder's guess (passed to the model; part of the
        provenance, so other steps re-encode).
    overwrite
        Re-encode stores whose latents of this run are already complete.
    progress
        A tqdm bar over patches on stderr.
    rows_per_chunk
        Rows per Zarr chunk of new latents: the unit of resumption.

    Returns
    -------
    list of dict
        One row per store: ``store``, ``status`` (``encoded``, ``skipped``: complete latents of
        the same checkpoint, encoder and refine_steps, ``failed``), ``n_patches``, ``seconds``,
        ``error``. Never raises for a bad store.

    Raises
    ------
    ConfigError
        Bad ``batch_size``, ``refine_steps`` or the model's ``run_id``.
    """
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise ConfigError(f"refine_steps must be an integer >= 0, got {refine_steps!r}")
    run_id, w_dim = check_run_id(model.run_id), int(model.w_dim)
    attrs = {**model.provenance(), "run_id": run_id, "w_dim": w_dim, "refine_steps": refine_steps,
             "pathgan_version": __version__}

    items = expand_each_store(stores)
    total = 0
    for path, error in items:
        if not error:
            with contextlib.suppress(Exception):  # a bad store is reported by the loop below
                total += int(read_store_attrs(path)["n_patches"])
    rows: list[StatusRow] = []
    with tqdm(total=total, desc=f"encode {run_id}", unit="patch", disable=not progress) as bar:
        for path, error in items:
            if error:
                rows.append(_row(path, "failed", error=error))
                continue
            t0 = time.perf_counter()
            writer: LatentWriter | None = None
            try:
                store = PatchStore(path)
                writer = open_latents_for_write(path, run_id, w_dim=w_dim, attrs=attrs,
                                                rows_per_chunk=rows_per_chunk, overwrite=overwrite)
                if writer.complete:
                    bar.update(writer.n_rows)
                    rows.append(_row(path, "skipped", n_patches=writer.n_rows, seconds=time.perf_counter() - t0))
                    continue
                bar.update(writer.rows_done)
                _encode_one(model, store, writer, batch_size=batch_size, refine_steps=refine_steps, bar=bar)
                rows.append(_row(path, "encoded", n_patches=writer.n_rows, seconds=time.perf_counter() - t0))
            except Exception as err:  # every failure becomes a status row; the other stores go on
                kept = (f" ({writer.rows_done} of {writer.n_rows} rows kept; a rerun resumes)"
                        if writer is not None and writer.rows_done else "")
                rows.append(_row(path, "failed", seconds=time.perf_counter() - t0,
                                 error=describe_error(err) + kept))
    return rows


def encode_run(run_dir: Path, stores: Sequence[Path] | None = None, *, device: str = "auto", batch_size: int = 64,
               refine_steps: int = 0, overwrite: bool = False, progress: bool = True,
               on_loaded: Any = None) -> tuple[Any, list[StatusRow]]:
    """``pathgan encode``: load ``run_dir``'s generator and fitted encoder, then :func:`encode_stores`.

    ``run_dir`` is a train-latent run or an exported model (``pathgan export-model``); the latents
    are named after the run, or the export's ``model_id``. ``stores`` default to the stores the
    run was trained on. ``on_loaded(model, stores)`` is called once the model is loaded (the CLI
    prints what it will do). Returns ``(model, rows)``.

    Raises
    ------
    PathganError
        Neither a run nor an exported model, no checkpoint, or no fitted encoder (the message says
        to run ``pathgan train-encoder``); no ``stores`` given and the run's own are no longer there
        (or the model is an export, which records its stores only as provenance).
    """
    from pathgan.latents import LatentModel

    model = LatentModel.load(run_dir, device=device, require_encoder=True)
    paths = list(stores) if stores is not None else model.bundle.default_stores()
    if on_loaded is not None:
        on_loaded(model, paths)
    return model, encode_stores(model, paths, batch_size=batch_size, refine_steps=refine_steps,
                                overwrite=overwrite, progress=progress)
