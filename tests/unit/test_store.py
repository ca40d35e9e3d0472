"""Store layout, codec round trip, schema validation and the CLAM h5 export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from pathgan.errors import SchemaMismatchError, StoreError
from pathgan.store import (
    CODEC_NAME,
    SCHEMA_VERSION,
    PatchStore,
    StoreAttrs,
    create_store,
    finalize_store,
    temp_path_for,
    write_clam_h5,
    write_shard,
)


def _smooth_patches(n: int, px: int, seed: int = 0) -> np.ndarray:
    """Smooth random images: JPEG-friendly, so the error bound is meaningful."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 8, 8, 3)).astype(np.float32)
    up = base.repeat(px // 8, axis=1).repeat(px // 8, axis=2)
    from scipy.ndimage import uniform_filter

    return np.clip(uniform_filter(up, size=(1, 9, 9, 1)), 0, 255).astype(np.uint8)


def _make(tmp_path: Path, codec: str, n: int = 10, per_shard: int = 4) -> tuple[Path, np.ndarray]:
    patches = _smooth_patches(n, 64)
    final = tmp_path / f"s-{codec}.zarr"
    tmp = temp_path_for(final)
    coords = np.arange(n * 2, dtype=np.int64).reshape(n, 2) * 64
    create_store(tmp, coords_xy=coords, tissue_fraction=np.linspace(0.5, 1, n), pen_fraction=np.zeros(n),
                 patch_px=64, patches_per_shard=per_shard, codec=codec, jpeg_quality=90,
                 thumbnail=np.zeros((5, 6, 3), np.uint8), tissue_mask=np.ones((5, 6), bool),
                 pen_mask=np.zeros((5, 6), bool))
    for start in range(0, n, per_shard):
        chunk = patches[start : start + per_shard]
        write_shard(tmp, start, chunk, np.arange(len(chunk)), np.zeros(len(chunk)))
    attrs = {"slide_id": "s", "source": {}, "mpp_requested": 0.5, "mpp_effective": [0.5, 0.5], "source_level": 0,
             "patch_px": 64, "stride_px": 64, "n_patches": n, "config": {}, "pathgan_version": "test"}
    assert not final.exists()
    finalize_store(tmp, final, attrs)
    assert final.exists() and not tmp.exists()
    return final, patches


def test_jpeg_round_trip_and_metadata(tmp_path: Path) -> None:
    final, patches = _make(tmp_path, "jpeg")
    store = PatchStore(final)
    got = store.read(np.arange(len(store)))
    err = np.abs(got.astype(int) - patches).mean()
    assert 0 < err < 4.0  # lossy but close: ANCHORS measured a mean abs error of 3 for q90 on H&E
    meta = json.loads((final / "patches" / "zarr.json").read_text())
    sharding = meta["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert sharding["configuration"]["chunk_shape"] == [1, 64, 64, 3]
    assert sharding["configuration"]["codecs"][0] == {"name": CODEC_NAME, "configuration": {"level": 90}}
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [4, 64, 64, 3]
    # each inner chunk is a standalone JPEG any decoder reads (here: Pillow, a second implementation)
    import io

    from PIL import Image
    shard = (final / "patches" / "c" / "0" / "0" / "0" / "0").read_bytes()
    soi = shard.index(b"\xff\xd8")
    eoi = shard.index(b"\xff\xd9", soi) + 2
    pil = np.asarray(Image.open(io.BytesIO(shard[soi:eoi])).convert("RGB"))
    assert np.abs(pil.astype(int) - got[0]).max() <= 2


def test_zstd_is_lossless_and_batched_read_order(tmp_path: Path) -> None:
    final, patches = _make(tmp_path, "zstd")
    store = PatchStore(final)
    idx = np.array([7, 0, 3, 3, 9])
    np.testing.assert_array_equal(store.read(idx), patches[idx])
    batches = list(store.iter_batches(4))
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), patches)
    assert store.qc("blur").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    with pytest.raises(StoreError, match="unknown QC score"):
        store.qc("sharpness")
    with pytest.raises(IndexError):
        store.read([10])


def test_codec_registered_in_fresh_process(tmp_path: Path) -> None:
    final, patches = _make(tmp_path, "jpeg")
    code = f"import pathgan.store, zarr, numpy as np; a = zarr.open_array({str(final / 'patches')!r}); print(a[3].mean())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert abs(float(out.stdout) - patches[3].mean()) < 2


def test_schema_validation(tmp_path: Path) -> None:
    final, _ = _make(tmp_path, "zstd")
    grp = zarr.open_group(final, mode="r+")
    attrs = dict(grp.attrs["pathgan"])
    grp.attrs["pathgan"] = {**attrs, "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(SchemaMismatchError, match=f"schema version {SCHEMA_VERSION + 1}"):
        PatchStore(final)
    grp.attrs["pathgan"] = {**attrs, "complete": False}
    with pytest.raises(StoreError, match="incomplete"):
        PatchStore(final)
    with pytest.raises(StoreError, match="not a pathgan patch store"):
        PatchStore(tmp_path / "nothing.zarr")


def test_clam_h5(tmp_path: Path) -> None:
    coords = np.array([[0, 0], [512, 0]], np.int64)
    path = tmp_path / "s.h5"
    write_clam_h5(path, coords_xy=coords, patch_level=0, patch_size_level_px=512, level_downsample=(1.0, 1.0),
                  level_dimensions=((2048, 1024), (512, 256)), slide_id="s", target_mpp=0.5, patch_px=256)
    with h5py.File(path, "r") as f:
        d = f["coords"]
        np.testing.assert_array_equal(d[:], coords)
        assert d.attrs["patch_size"] == 512 and d.attrs["patch_level"] == 0
        assert list(d.attrs["level_dim"]) == [2048, 1024] and d.attrs["name"] == "s"
        assert d.attrs["target_mpp"] == 0.5


@pytest.mark.parametrize("n", [8, 10, 3])
def test_direct_jpeg_shards_equal_zarr_written_shards(tmp_path: Path, n: int) -> None:
    """write_shard assembles JPEG shards and QC chunks itself (no per-chunk zarr pipeline): the
    files must be byte-identical to what zarr writes, full and partial last shards alike."""
    from pathgan.store._writer import _jpeg_shard_codec

    patches = _smooth_patches(n, 64, seed=3)
    blur = np.linspace(0.001, 0.01, n).astype(np.float32)
    white = np.linspace(0.0, 1.0, n).astype(np.float32)
    stores = []
    for direct in (True, False):
        path = tmp_path / f"d{direct}.zarr"
        create_store(path, coords_xy=np.zeros((n, 2), np.int64), tissue_fraction=np.ones(n), pen_fraction=np.zeros(n),
                     patch_px=64, patches_per_shard=4, codec="jpeg", jpeg_quality=85,
                     thumbnail=np.zeros((5, 6, 3), np.uint8), tissue_mask=np.ones((5, 6), bool),
                     pen_mask=np.zeros((5, 6), bool))
        assert _jpeg_shard_codec(zarr.open_group(path, mode="r")["patches"]) is not None  # type: ignore[arg-type]
        for start in range(0, n, 4):
            chunk = patches[start : start + 4]
            stop = start + len(chunk)
            if direct:
                write_shard(path, start, chunk, blur[start:stop], white[start:stop])
            else:
                grp = zarr.open_group(path, mode="r+")
                with zarr.config.set({"array.write_empty_chunks": True}):
                    grp["patches"][start:stop] = chunk  # type: ignore[index]
                grp["qc/blur"][start:stop] = blur[start:stop]  # type: ignore[index]
                grp["qc/white_fraction"][start:stop] = white[start:stop]  # type: ignore[index]
        stores.append(path)
    files = sorted(p.relative_to(stores[0]) for name in ("patches", "qc/blur", "qc/white_fraction")
                   for p in (stores[0] / name / "c").rglob("*") if p.is_file())
    assert len(files) == 3 * -(-n // 4)
    for rel in files:
        assert (stores[0] / rel).read_bytes() == (stores[1] / rel).read_bytes(), rel
    grp = zarr.open_group(stores[0], mode="r")
    got = np.asarray(grp["patches"][:])  # type: ignore[index]
    assert got.shape == patches.shape and np.abs(got.astype(int) - patches).mean() < 8  # JPEG q85, 4:2:0
    np.testing.assert_array_equal(grp["qc/blur"][:], blur)  # type: ignore[index]
    np.testing.assert_array_equal(grp["qc/white_fraction"][:], white)  # type: ignore[index]


# ------------------------------------------------------------------------------- StoreAttrs (schema)
_GOOD = {"slide_id": "s", "source": {}, "mpp_requested": 0.5, "mpp_effective": [0.5, 0.5], "source_level": 0,
         "patch_px": 64, "stride_px": 64, "n_patches": 10, "config": {}, "pathgan_version": "test"}


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("patch_px", "64", "an integer >= 1"),
    ("patch_px", 0, "an integer >= 1"),
    ("n_patches", True, "an integer >= 0"),
    ("mpp_requested", -0.5, "a finite number > 0"),
    ("mpp_requested", float("nan"), "a finite number > 0"),
    ("mpp_effective", [0.5], r"two numbers > 0 \[x, y\]"),
    ("source", "slide.svs", "a mapping"),
    ("slide_id", "", "a non-empty string"),
    ("label", 3, "a non-empty string or null"),
    ("class_names", ["a", 1], "a list of strings"),
])
def test_store_attrs_name_the_field_what_was_found_and_what_is_allowed(key: str, value: object, allowed: str) -> None:
    with pytest.raises(StoreError, match=rf"x.zarr: store attribute '{key}' is .*; allowed: {allowed}"):
        StoreAttrs.from_dict({**_GOOD, key: value}, "x.zarr")


def test_store_attrs_missing_version_and_unknown_keys() -> None:
    with pytest.raises(StoreError, match=r"lack \['n_patches', 'pathgan_version'\]"):
        StoreAttrs.from_dict({k: v for k, v in _GOOD.items() if k not in ("n_patches", "pathgan_version")})
    with pytest.raises(SchemaMismatchError, match="schema version 2; this pathgan reads version 1"):
        StoreAttrs.from_dict({**_GOOD, "schema_version": 2})
    a = StoreAttrs.from_dict({**_GOOD, "from_the_future": {"x": 1}})
    assert a.extra == {"from_the_future": {"x": 1}}
    assert a.to_dict()["from_the_future"] == {"x": 1}  # kept on rewrite
    assert StoreAttrs.from_dict(a.to_dict()) == a
    assert a.mpp_effective == (0.5, 0.5) and isinstance(a.to_dict()["mpp_effective"], list)


def test_invalid_attrs_never_mark_a_store_complete(tmp_path: Path) -> None:
    final = tmp_path / "bad.zarr"
    tmp = temp_path_for(final)
    create_store(tmp, coords_xy=np.zeros((2, 2), np.int64), tissue_fraction=np.ones(2), pen_fraction=np.zeros(2),
                 patch_px=8, patches_per_shard=2, codec="zstd", jpeg_quality=90,
                 thumbnail=np.zeros((2, 2, 3), np.uint8), tissue_mask=np.ones((2, 2), bool),
                 pen_mask=np.zeros((2, 2), bool))
    with pytest.raises(StoreError, match=r"bad\.zarr: store attribute 'patch_px' is '8'"):
        finalize_store(tmp, final, {**_GOOD, "patch_px": "8"})
    assert not final.exists() and tmp.exists()  # still the temporary name


def test_reader_refuses_attrs_edited_into_an_invalid_state(tmp_path: Path) -> None:
    final, _ = _make(tmp_path, "zstd")
    grp = zarr.open_group(final, mode="r+")
    grp.attrs["pathgan"] = {**dict(grp.attrs["pathgan"]), "mpp_requested": "half a micron"}
    with pytest.raises(StoreError, match="'mpp_requested' is 'half a micron'; allowed: a finite number > 0"):
        PatchStore(final)


@pytest.mark.parametrize(("codec", "per_shard", "expected"), [("jpeg", 4, ("jpeg", 90)), ("zstd", 3, ("zstd", 0))])
def test_store_reports_its_own_shard_size_and_codec(tmp_path: Path, codec: str, per_shard: int,
                                                     expected: tuple[str, int]) -> None:
    final, _ = _make(tmp_path, codec, per_shard=per_shard)
    st = PatchStore(final)
    assert st.patches_per_shard == per_shard and st.codec == expected
    assert st.meta.patch_px == 64 and st.meta.mpp_effective == (0.5, 0.5)
    n_shard_files = len([p for p in (final / "patches" / "c").rglob("*") if p.is_file()])
    assert n_shard_files == -(-10 // per_shard)  # on disk: one file per shard
