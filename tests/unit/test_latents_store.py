"""latents/<run_id> in a patch store: chunked writes, resume rules, validation, reading back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from _tiny import make_coded_store

from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.store import (
    PatchStore,
    latent_runs,
    latents_attrs,
    open_latents_for_write,
    read_latents,
    read_store_attrs,
)

W = 4
CKPT = "a" * 64
ENC = "e" * 64


def make_store(path: Path, n: int = 10, px: int = 16, per_shard: int = 4) -> Path:
    """See ``_tiny.make_coded_store``."""
    return make_coded_store(path, n, px, per_shard)


def _attrs(ckpt: str = CKPT, enc: str = ENC, **extra: object) -> dict[str, object]:
    return {"checkpoint_sha256": ckpt, "encoder_sha256": enc, "run_dir": "/runs/r", **extra}


def _values(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, W)).astype(np.float32)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "s.zarr")


def test_round_trip_in_chunks_keeps_root_attrs(store: Path) -> None:
    before = read_store_attrs(store)
    values = _values(10)
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=4)
    assert (w.n_rows, w.rows_done, w.complete, w.rows_per_chunk) == (10, 0, False, 4)
    for start in (0, 4, 8):
        w.write(start, values[start : start + 4])
    w.finish()
    assert w.complete and w.rows_done == 10
    np.testing.assert_array_equal(read_latents(store, "run-1"), values)
    ps = PatchStore(store)  # the root attrs are untouched: the store still opens as complete
    np.testing.assert_array_equal(ps.latents("run-1"), values)
    assert read_store_attrs(store) == before
    runs = ps.latent_runs()
    assert list(runs) == ["run-1"]
    assert runs["run-1"]["checkpoint_sha256"] == CKPT and runs["run-1"]["complete"] is True
    assert (runs["run-1"]["n_rows"], runs["run-1"]["w_dim"]) == (10, W)
    assert latents_attrs(store, "run-1") == runs["run-1"]
    arr = zarr.open_group(store, mode="r")["latents/run-1"]
    assert isinstance(arr, zarr.Array) and arr.chunks == (4, W) and arr.dtype == np.float32


def test_incomplete_latents_are_refused_with_progress(store: Path) -> None:
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=4)
    w.write(0, _values(4))
    with pytest.raises(StoreError, match=r"incomplete: 4 of 10 rows done.*pathgan encode"):
        read_latents(store, "run-1")
    with pytest.raises(StoreError, match="only 4 of 10 rows written"):
        w.finish()
    assert latent_runs(store)["run-1"]["complete"] is False


def test_absent_run_names_store_and_run(store: Path) -> None:
    with pytest.raises(StoreError, match=r"s\.zarr has no latents for run 'nope' \(available: none\)"):
        read_latents(store, "nope")
    open_latents_for_write(store, "other", w_dim=W, attrs=_attrs())
    with pytest.raises(StoreError, match=r"available: \['other'\]"):
        latents_attrs(store, "nope")
    assert latent_runs(store).keys() == {"other"}


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a pathgan patch store"):
        open_latents_for_write(tmp_path / "missing.zarr", "r", w_dim=W, attrs=_attrs())


def test_resume_continues_with_same_hashes(store: Path) -> None:
    values = _values(10)
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=4)
    w.write(0, values[:4])
    w.write(4, values[4:8])
    again = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(note="second"), rows_per_chunk=2)
    assert (again.rows_done, again.rows_per_chunk, again.complete) == (8, 4, False)  # keeps its own chunks
    again.write(8, values[8:])
    again.finish()
    np.testing.assert_array_equal(read_latents(store, "run-1"), values)
    assert latents_attrs(store, "run-1")["note"] == "second"


@pytest.mark.parametrize("change", [{"ckpt": "b" * 64}, {"enc": "f" * 64}, {"refine_steps": 5}])
def test_other_hashes_start_over(store: Path, change: dict[str, object]) -> None:
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=4)
    w.write(0, _values(4))
    again = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(**change), rows_per_chunk=4)  # type: ignore[arg-type]
    assert again.rows_done == 0 and not again.complete
    assert np.isnan(zarr.open_array(store / "latents" / "run-1", mode="r")[:]).all()  # old rows gone
    info = latents_attrs(store, "run-1")
    assert info["rows_done"] == 0
    key, value = next(iter(change.items()))
    assert info[{"ckpt": "checkpoint_sha256", "enc": "encoder_sha256"}.get(key, key)] == value


def test_complete_is_reported_and_overwrite_or_new_w_dim_restart(store: Path) -> None:
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=8)
    w.write(0, _values(8))
    w.write(8, _values(2))
    w.finish()
    same = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs())
    assert same.complete and same.rows_done == 10
    with pytest.raises(StoreError, match="already complete"):
        same.write(0, _values(8))
    assert latents_attrs(store, "run-1")["complete"] is True  # reopening did not reset it
    forced = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), overwrite=True)
    assert not forced.complete and forced.rows_done == 0
    wider = open_latents_for_write(store, "run-1", w_dim=W + 1, attrs=_attrs())
    assert wider.rows_done == 0 and wider.w_dim == W + 1


@pytest.mark.parametrize("run_id", ["", "..", ".hidden", "a/b", "a b", "r\u00e9sum\u00e9", "__x"])
def test_bad_run_id(store: Path, run_id: str) -> None:
    with pytest.raises(ConfigError, match=rf"run id {run_id!r} is not allowed: .*letters, digits"):
        open_latents_for_write(store, run_id, w_dim=W, attrs=_attrs())


def test_attrs_and_sizes_are_validated(store: Path) -> None:
    with pytest.raises(ConfigError, match=r"non-empty 'checkpoint_sha256'.*got \['run_dir'\]"):
        open_latents_for_write(store, "r", w_dim=W, attrs={"run_dir": "x"})
    with pytest.raises(ConfigError, match="JSON-safe"):
        open_latents_for_write(store, "r", w_dim=W, attrs=_attrs(path=Path("x")))
    with pytest.raises(ConfigError, match="w_dim must be a positive integer, got 0"):
        open_latents_for_write(store, "r", w_dim=0, attrs=_attrs())
    with pytest.raises(ConfigError, match="rows_per_chunk must be a positive integer, got -1"):
        open_latents_for_write(store, "r", w_dim=W, attrs=_attrs(), rows_per_chunk=-1)


def test_write_validation_names_what_was_found(store: Path) -> None:
    w = open_latents_for_write(store, "run-1", w_dim=W, attrs=_attrs(), rows_per_chunk=4)
    where = r"latents/run-1 rows \[0, 4\) of .*s\.zarr"
    with pytest.raises(ShapeError, match=rf"{where}: expected float32 \[k >= 1, 4\], got float64 \[4, 4\]"):
        w.write(0, _values(4).astype(np.float64))
    with pytest.raises(ShapeError, match=r"got float32 \[4, 3\]"):
        w.write(0, _values(4)[:, :3])
    bad = _values(4)
    bad[2, 1] = np.nan
    with pytest.raises(ShapeError, match=r"1 latent\(s\) contain NaN or inf, first at row 2"):
        w.write(0, bad)
    with pytest.raises(ShapeError, match="must continue at row 0 \\(rows_done\\), not 4"):
        w.write(4, _values(4))
    with pytest.raises(ShapeError, match="not aligned to chunks of 4 rows"):
        w.write(0, _values(3))
    assert w.rows_done == 0  # nothing was written by the refused calls
    w.write(0, _values(8))  # two whole chunks at once are fine
    with pytest.raises(ShapeError, match="the store has only 10 patches"):
        w.write(8, _values(4))
    assert latents_attrs(store, "run-1")["rows_done"] == 8


def test_empty_store(tmp_path: Path) -> None:
    path = make_store(tmp_path / "empty.zarr", n=0)
    w = open_latents_for_write(path, "run-1", w_dim=W, attrs=_attrs())
    assert w.n_rows == 0
    w.finish()
    assert read_latents(path, "run-1").shape == (0, W)
