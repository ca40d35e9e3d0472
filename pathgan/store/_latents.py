"""Latent vectors written back into a patch store: ``latents/<run_id>`` float32 [N, w_dim].

Row ``i`` is the latent of patch ``i`` (the same row as ``coords[i]``). The array is written in
whole chunks, in order, and its attributes record how many rows are done, so an interrupted
``pathgan encode`` continues where it stopped instead of starting over::

    latents/<run_id>.attrs = {
        "pathgan": {...},      # the caller's provenance: checkpoint_sha256, encoder_sha256, ...
        "complete": bool,      # every row written and checked
        "rows_done": int,      # rows [0, rows_done) are final
    }

A restart (instead of a resume) happens when the existing array was written by another checkpoint
or encoder (``checkpoint_sha256``, ``encoder_sha256``) or with other ``refine_steps``, has another
shape, or when the caller asks for ``overwrite``. Unwritten rows hold NaN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pathgan._faults import fault_point
from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.store import _schema as S
from pathgan.store._reader import read_store_attrs
from pathgan.store._writer import _array

__all__ = [
    "IDENTITY_KEYS",
    "LatentWriter",
    "check_run_id",
    "latent_runs",
    "latents_attrs",
    "open_latents_for_write",
    "read_latents",
]

#: Keys of attrs["pathgan"] that decide whether existing latents are the same computation.
IDENTITY_KEYS = ("checkpoint_sha256", "encoder_sha256", "refine_steps")

_COMPLETE = "complete"
_ROWS_DONE = "rows_done"
# A letter or digit first: no "." / ".." path components, no zarr-reserved "__" prefix.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is usable as an array name, else raise :class:`ConfigError`."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r} is not allowed: use a non-empty name of letters, digits, '.', '_' and '-' "
            "starting with a letter or digit (e.g. the run directory's name '00012-pathologygan-64-cpu')"
        )
    return run_id


def _key(run_id: str) -> str:
    return f"{S.LATENTS}/{check_run_id(run_id)}"


def _open_store(store_path: Path, mode: str) -> tuple[zarr.Group, int]:
    """The root group of a complete store and its number of patches."""
    store_path = Path(store_path)
    read_store_attrs(store_path)  # StoreError / SchemaMismatchError for anything but a complete store
    grp = zarr.open_group(store_path, mode=mode)  # type: ignore[arg-type]
    return grp, int(_array(grp, S.PATCHES).shape[0])


def _find(grp: zarr.Group, run_id: str) -> zarr.Array | None:
    """The latents array of ``run_id``, or None if absent (or unreadable, which a writer replaces)."""
    if S.LATENTS not in grp:
        return None
    try:
        node = grp[_key(run_id)]
    except (KeyError, FileNotFoundError, ValueError):
        return None
    return node if isinstance(node, zarr.Array) else None


def _rows_done(arr: zarr.Array) -> int:
    """``attrs["rows_done"]``; -1 when it is not an integer (the writer then starts over)."""
    value = arr.attrs.get(_ROWS_DONE, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _describe(arr: zarr.Array) -> dict[str, Any]:
    raw = arr.attrs.get(S.ATTRS_KEY)
    out: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    out.update(
        complete=bool(arr.attrs.get(_COMPLETE, False)),
        rows_done=_rows_done(arr),
        n_rows=int(arr.shape[0]),
        w_dim=int(arr.shape[1]) if arr.ndim == 2 else None,
    )
    return out


def _missing(store_path: Path, grp: zarr.Group, run_id: str) -> StoreError:
    available = sorted(_runs_of(grp))
    return StoreError(
        f"{store_path} has no latents for run {run_id!r} (available: {available or 'none'}); "
        f"write them with `pathgan encode --run RUN_DIR --stores {store_path}`"
    )


class LatentWriter:
    """Writes one store's ``latents/<run_id>`` in whole chunks, in row order.

    Use :func:`open_latents_for_write` to get one. ``rows_done`` rows are already final; continue
    with ``write(rows_done, values)`` where ``values`` covers whole chunks (or ends at ``n_rows``),
    then call :meth:`finish`. When ``complete`` is True there is nothing to do.
    """

    def __init__(self, array: zarr.Array, *, store_path: Path, run_id: str, rows_done: int, complete: bool) -> None:
        self._array = array
        self.store_path = Path(store_path)
        self.run_id = run_id
        self.n_rows = int(array.shape[0])
        self.w_dim = int(array.shape[1])
        self.rows_per_chunk = int(array.chunks[0])
        self.rows_done = int(rows_done)
        self.complete = bool(complete)

    def __repr__(self) -> str:
        return (f"LatentWriter({str(self.store_path)!r}, run_id={self.run_id!r}, "
                f"rows_done={self.rows_done}/{self.n_rows}, complete={self.complete})")

    def _where(self, start: int, stop: int) -> str:
        return f"latents/{self.run_id} rows [{start}, {stop}) of {self.store_path}"

    def write(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` (float32 [k, w_dim], all finite) to rows ``[start, start + k)``.

        Raises
        ------
        ShapeError
            Wrong shape or dtype, a NaN/inf value, ``start != rows_done``, or rows that do not
            cover whole chunks (except the last, partial chunk).
        StoreError
            The latents are already complete.
        """
        if self.complete:
            raise StoreError(f"latents/{self.run_id} of {self.store_path} are already complete")
        values = np.asarray(values)
        stop = start + (len(values) if values.ndim else 0)
        where = self._where(start, stop)
        if values.dtype != np.float32 or values.ndim != 2 or values.shape[1] != self.w_dim or not len(values):
            raise ShapeError(
                f"{where}: expected float32 [k >= 1, {self.w_dim}], got {values.dtype} {list(values.shape)}"
            )
        if start != self.rows_done:
            raise ShapeError(f"{where}: writes must continue at row {self.rows_done} (rows_done), not {start}")
        if stop > self.n_rows:
            raise ShapeError(f"{where}: the store has only {self.n_rows} patches")
        if start % self.rows_per_chunk or (stop % self.rows_per_chunk and stop != self.n_rows):
            raise ShapeError(f"{where}: not aligned to chunks of {self.rows_per_chunk} rows")
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ShapeError(
                f"{where}: {len(bad)} latent(s) contain NaN or inf, first at row {start + int(bad[0])} "
                f"({values[bad[0]].tolist()[:8]})"
            )
        self._array[start:stop] = values
        fault_point("latents.rows")  # rows written, the counter not yet moved
        # Rows first, then the counter: a crash in between only means those rows are written again.
        self._array.attrs[_ROWS_DONE] = stop
        self.rows_done = stop

    def finish(self) -> None:
        """Mark the latents complete; raises :class:`StoreError` unless every row was written."""
        if self.complete:
            return
        if self.rows_done != self.n_rows:
            raise StoreError(
                f"latents/{self.run_id} of {self.store_path}: only {self.rows_done} of {self.n_rows} rows written"
            )
        self._array.attrs[_COMPLETE] = True
        self.complete = True


def open_latents_for_write(
    store_path: Path,
    run_id: str,
    *,
    w_dim: int,
    attrs: dict[str, Any],
    rows_per_chunk: int = 1024,
    overwrite: bool = False,
) -> LatentWriter:
    """Create ``latents/<run_id>`` in a complete store, or reopen it to resume.

    Parameters
    ----------
    store_path
        A complete patch store (``<slide_id>.zarr``).
    run_id
        Letters, digits, ``.``, ``_``, ``-``; the name of the array.
    w_dim
        Latent size; the array is float32 [N, w_dim] with N the store's number of patches.
    attrs
        JSON-safe provenance stored under ``attrs["pathgan"]``; must hold ``checkpoint_sha256``.
        Existing latents are reused (resumed, or reported complete) only when their
        :data:`IDENTITY_KEYS` and shape match.
    rows_per_chunk
        Rows per Zarr chunk of a new array (an existing one keeps its own).
    overwrite
        Always start over.

    Raises
    ------
    ConfigError
        Bad ``run_id``, ``w_dim``, ``rows_per_chunk`` or ``attrs``.
    StoreError
        ``store_path`` is not a complete patch store.
    """
    check_run_id(run_id)
    if isinstance(w_dim, bool) or not isinstance(w_dim, int | np.integer) or w_dim < 1:
        raise ConfigError(f"w_dim must be a positive integer, got {w_dim!r}")
    if isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int | np.integer) or rows_per_chunk < 1:
        raise ConfigError(f"rows_per_chunk must be a positive integer, got {rows_per_chunk!r}")
    if not isinstance(attrs, dict) or not isinstance(attrs.get("checkpoint_sha256"), str) or not attrs["checkpoint_sha256"]:
        got = sorted(attrs) if isinstance(attrs, dict) else type(attrs).__name__
        raise ConfigError(f"latent attrs must be a dict with a non-empty 'checkpoint_sha256' string, got {got}")
    try:
        attrs = json.loads(json.dumps(attrs, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"latent attrs must be JSON-safe (str, numbers, lists, dicts): {err}") from err

    store_path = Path(store_path)
    grp, n = _open_store(store_path, "r+")
    existing = None if overwrite else _find(grp, run_id)
    if existing is not None and _reusable(existing, attrs, n, int(w_dim)):
        complete = bool(existing.attrs.get(_COMPLETE, False))
        rows_done = n if complete else _rows_done(existing)
        chunk = int(existing.chunks[0])
        if 0 <= rows_done <= n and (rows_done % chunk == 0 or rows_done == n):
            if not complete:
                existing.attrs[S.ATTRS_KEY] = attrs  # the latest description of the same computation
            return LatentWriter(existing, store_path=store_path, run_id=run_id, rows_done=rows_done,
                                complete=complete)

    arr = grp.create_array(
        _key(run_id),
        shape=(n, int(w_dim)),
        dtype="float32",
        chunks=(int(min(rows_per_chunk, max(n, 1))), int(w_dim)),
        compressors=None,  # float32 latents are noise to a compressor
        fill_value=np.nan,
        attributes={S.ATTRS_KEY: attrs, _COMPLETE: False, _ROWS_DONE: 0},
        overwrite=True,
    )
    return LatentWriter(arr, store_path=store_path, run_id=run_id, rows_done=0, complete=False)


def _reusable(arr: zarr.Array, attrs: dict[str, Any], n: int, w_dim: int) -> bool:
    if arr.shape != (n, w_dim) or arr.dtype != np.dtype("float32"):
        return False
    old = arr.attrs.get(S.ATTRS_KEY)
    if not isinstance(old, dict):
        return False
    return all(old.get(k) == attrs.get(k) for k in IDENTITY_KEYS)


def read_latents(store_path: Path, run_id: str) -> np.ndarray:
    """The complete latents ``float32 [N, w_dim]`` of ``run_id``, row-aligned with ``coords``.

    Raises
    ------
    StoreError
        The store is not a complete patch store, has no latents for ``run_id``, or they are
        incomplete (an interrupted ``pathgan encode``; the message says how far it got).
    """
    store_path = Path(store_path)
    grp, n = _open_store(store_path, "r")
    arr = _find(grp, run_id)
    if arr is None:
        raise _missing(store_path, grp, run_id)
    info = _describe(arr)
    if not info["complete"]:
        raise StoreError(
            f"latents/{run_id} of {store_path} are incomplete: {info['rows_done']} of {info['n_rows']} rows done; "
            f"rerun `pathgan encode` with the same run to finish them"
        )
    if arr.ndim != 2 or arr.shape[0] != n:
        raise StoreError(f"latents/{run_id} of {store_path} has shape {list(arr.shape)}, expected [{n}, w_dim]")
    return np.asarray(arr[:], np.float32)


def _runs_of(grp: zarr.Group) -> dict[str, dict[str, Any]]:
    if S.LATENTS not in grp:
        return {}
    sub = grp[S.LATENTS]
    if not isinstance(sub, zarr.Group):
        return {}
    return {name: _describe(arr) for name, arr in sorted(sub.arrays())}


def latent_runs(store_path: Path) -> dict[str, dict[str, Any]]:
    """Every latents array of a store: ``run_id -> {**attrs["pathgan"], complete, rows_done, n_rows, w_dim}``."""
    grp, _ = _open_store(Path(store_path), "r")
    return _runs_of(grp)


def latents_attrs(store_path: Path, run_id: str) -> dict[str, Any]:
    """``{**attrs["pathgan"], complete, rows_done, n_rows, w_dim}`` of one run; StoreError if absent."""
    store_path = Path(store_path)
    grp, _ = _open_store(store_path, "r")
    arr = _find(grp, run_id)
    if arr is None:
        raise _missing(store_path, grp, run_id)
    return _describe(arr)
