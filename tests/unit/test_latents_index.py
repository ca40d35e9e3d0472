"""LatentIndex against brute-force numpy search, and its pixels against the stores it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.latents._index import LatentIndex, Neighbour
from pathgan.store import (
    create_store,
    finalize_store,
    open_latents_for_write,
    temp_path_for,
    write_shard,
)

RNG = np.random.default_rng(0)


def _make_store(tmp_path: Path, slide_id: str, n: int, *, patch_px: int = 8, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A complete lossless store of random pixels; returns (path, patches [n, P, P, 3], coords [n, 2])."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, size=(n, patch_px, patch_px, 3), dtype=np.uint8)
    coords = rng.integers(0, 10_000, size=(n, 2), dtype=np.int64)
    final = tmp_path / f"{slide_id}.zarr"
    tmp = temp_path_for(final)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.ones(n), pen_fraction=np.zeros(n),
                 patch_px=patch_px, patches_per_shard=4, codec="zstd", jpeg_quality=90,
                 thumbnail=np.zeros((4, 4, 3), np.uint8), tissue_mask=np.ones((4, 4), bool),
                 pen_mask=np.zeros((4, 4), bool))
    for start in range(0, n, 4):
        stop = min(n, start + 4)
        write_shard(tmp, start, patches[start:stop], np.full(stop - start, 100.0), np.zeros(stop - start))
    attrs = {"slide_id": slide_id, "label": None, "split": None,
             "source": {"size_bytes": 1000 + seed, "sha256_first_mib": f"{seed:064x}"},
             "mpp_requested": 0.5, "mpp_effective": [0.5, 0.5], "source_level": 0, "patch_px": patch_px,
             "stride_px": patch_px, "n_patches": n, "config": {"mpp": 0.5, "patch_px": patch_px, "codec": "zstd"},
             "pathgan_version": "test"}
    finalize_store(tmp, final, attrs)
    return final, patches, coords


def _brute(latents: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: all distances in float64, then argsort."""
    x, q = latents.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        d = 1.0 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    else:
        d = np.sqrt(((x - q) ** 2).sum(axis=1))
    order = np.argsort(d)[:k]
    return order, d[order]


def _index(n: int = 60, d: int = 24, metric: str = "euclidean") -> tuple[LatentIndex, np.ndarray]:
    lat = RNG.normal(size=(n, d)).astype(np.float32)
    idx = LatentIndex(lat, store_paths=[Path("a.zarr"), Path("b.zarr")], store_index=np.arange(n) % 2,
                      rows=np.arange(n) // 2, coords=np.stack([np.arange(n) * 10, np.arange(n) * 20 + 1], 1),
                      slide_ids=["slide-a", "slide-b"], metric=metric)  # type: ignore[arg-type]
    return idx, lat


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_query_matches_brute_force(metric: str) -> None:
    idx, lat = _index(metric=metric)
    queries = RNG.normal(size=(5, 24)).astype(np.float32)
    results = idx.query(queries, k=7)
    assert len(results) == 5
    for q, hits in zip(queries, results, strict=True):
        order, dist = _brute(lat, q, 7, metric)
        assert isinstance(hits, list) and all(isinstance(h, Neighbour) for h in hits)
        got_rows = [(h.store.name, h.row) for h in hits]
        want = [("a.zarr" if j % 2 == 0 else "b.zarr", j // 2) for j in order]
        assert got_rows == want
        np.testing.assert_allclose([h.distance for h in hits], dist, rtol=1e-4, atol=1e-5)
        for h, j in zip(hits, order, strict=True):
            assert (h.x, h.y) == (j * 10, j * 20 + 1)
            assert h.slide_id == ("slide-a" if j % 2 == 0 else "slide-b")


def test_single_query_returns_flat_list_and_finds_itself() -> None:
    idx, lat = _index()
    hits = idx.query(lat[13], k=3)
    assert isinstance(hits[0], Neighbour)
    assert (hits[0].store.name, hits[0].row) == ("b.zarr", 6) and hits[0].distance == pytest.approx(0, abs=1e-3)
    assert len(idx) == 60


def test_validation() -> None:
    idx, lat = _index(n=10)
    with pytest.raises(ConfigError, match=r"1\.\.10"):
        idx.query(lat[0], k=11)
    with pytest.raises(ShapeError, match="d=24"):
        idx.query(np.zeros(5))
    kw = dict(store_paths=[Path("a")], store_index=np.zeros(3), rows=np.arange(3), coords=np.zeros((3, 2)),
              slide_ids=["a"])
    with pytest.raises(ConfigError, match="metric"):
        LatentIndex(np.zeros((3, 2)), metric="manhattan", **kw)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="coords"):
        LatentIndex(np.zeros((3, 2)), **{**kw, "coords": np.zeros((3, 3))})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="store_index"):
        LatentIndex(np.zeros((3, 2)), **{**kw, "store_index": np.array([0, 1, 0])})  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="one id per store"):
        LatentIndex(np.zeros((3, 2)), **{**kw, "slide_ids": ["a", "b"]})  # type: ignore[arg-type]


def _write_latents(path: Path, run_id: str, w: np.ndarray) -> None:
    writer = open_latents_for_write(path, run_id, w_dim=w.shape[1], attrs={"checkpoint_sha256": "0" * 64})
    writer.write(0, w)
    writer.finish()


def test_from_stores_and_patches_read_the_right_pixels(tmp_path: Path) -> None:
    pa, px_a, co_a = _make_store(tmp_path, "slide-a", 9, seed=1)
    pb, px_b, co_b = _make_store(tmp_path, "slide-b", 6, seed=2)
    wa = RNG.normal(size=(9, 16)).astype(np.float32)
    wb = RNG.normal(size=(6, 16)).astype(np.float32)
    _write_latents(pa, "run1", wa)
    _write_latents(pb, "run1", wb)

    idx = LatentIndex.from_stores([pa, pb], "run1", metric="cosine")
    assert len(idx) == 15
    all_w = np.concatenate([wa, wb])
    q = all_w[11] + 0.01 * RNG.normal(size=16).astype(np.float32)  # near row 2 of store b
    hits = idx.query(q, k=6)
    order, _ = _brute(all_w, q, 6, "cosine")
    truth = [(pa, j) if j < 9 else (pb, j - 9) for j in order]
    assert [(h.store, h.row) for h in hits] == truth
    assert hits[0].slide_id == "slide-b" and (hits[0].x, hits[0].y) == tuple(co_b[2])
    for h in hits:
        co = co_a if h.store == pa else co_b
        assert (h.x, h.y) == tuple(co[h.row])
        assert h.slide_id == ("slide-a" if h.store == pa else "slide-b")

    pixels = idx.patches(hits)  # mixes both stores; must keep the neighbour order
    assert pixels.shape == (6, 8, 8, 3) and pixels.dtype == np.uint8
    for img, h in zip(pixels, hits, strict=True):
        src = px_a if h.store == pa else px_b
        np.testing.assert_array_equal(img, src[h.row])

    with pytest.raises(ConfigError, match="empty"):
        idx.patches([])
    with pytest.raises(ConfigError, match="flat list"):
        idx.patches(idx.query(np.stack([q, q]), k=2))  # type: ignore[arg-type]


def test_from_stores_without_latents_names_the_run(tmp_path: Path) -> None:
    pa, _, _ = _make_store(tmp_path, "slide-a", 4)
    with pytest.raises(StoreError, match="run2"):
        LatentIndex.from_stores([pa], "run2")
