"""pathgan.data on tiny lossless stores: pixels, crops, filters, augmentation, loaders, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pathgan.data import (
    BatchKey,
    EpochBatchSampler,
    PatchDataset,
    data_fingerprint,
    describe,
    make_loader,
    split_stores,
)
from pathgan.errors import ConfigError, StoreError
from pathgan.store import PatchStore, create_store, finalize_store, temp_path_for, write_shard


def make_store(
    tmp_path: Path,
    slide_id: str,
    *,
    n: int = 12,
    patch_px: int = 32,
    mpp: float = 0.5,
    split: str | None = None,
    tissue: np.ndarray | None = None,
    white: np.ndarray | None = None,
    pen: np.ndarray | None = None,
    blur: np.ndarray | None = None,
    per_shard: int = 5,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """A complete zstd (lossless) store with random pixels; returns (path, patches uint8 [n, P, P, 3])."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, size=(n, patch_px, patch_px, 3), dtype=np.uint8)
    tissue = np.ones(n) if tissue is None else tissue
    white = np.zeros(n) if white is None else white
    pen = np.zeros(n) if pen is None else pen
    blur = np.full(n, 100.0) if blur is None else blur
    final = tmp_path / f"{slide_id}-{patch_px}-{mpp}.zarr"
    tmp = temp_path_for(final)
    create_store(tmp, coords_xy=np.arange(2 * n).reshape(n, 2) * patch_px, tissue_fraction=tissue,
                 pen_fraction=pen, patch_px=patch_px, patches_per_shard=per_shard, codec="zstd",
                 jpeg_quality=90, thumbnail=np.zeros((4, 4, 3), np.uint8), tissue_mask=np.ones((4, 4), bool),
                 pen_mask=np.zeros((4, 4), bool))
    for start in range(0, n, per_shard):
        stop = min(n, start + per_shard)
        write_shard(tmp, start, patches[start:stop], blur[start:stop], white[start:stop])
    attrs = {"slide_id": slide_id, "label": None, "split": split,
             "source": {"size_bytes": 1000 + seed, "sha256_first_mib": f"{seed:064x}"},
             "mpp_requested": mpp, "mpp_effective": [mpp, mpp], "source_level": 0, "patch_px": patch_px,
             "stride_px": patch_px, "n_patches": n, "config": {"mpp": mpp, "patch_px": patch_px, "codec": "zstd"},
             "pathgan_version": "test"}
    finalize_store(tmp, final, attrs)
    return final, patches


def as_float(patches: np.ndarray) -> torch.Tensor:
    """Independent reference conversion: uint8 (B, H, W, 3) -> float32 [B, 3, H, W] / 255."""
    return torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 3, 1, 2)).astype(np.float32) / 255)


def eight(patch: np.ndarray) -> list[np.ndarray]:
    """The 8 dihedral transforms of (H, W, C), computed here with np.rot90 / np.fliplr."""
    rots = [np.rot90(patch, k) for k in range(4)]
    return rots + [np.fliplr(r) for r in rots]


@pytest.fixture
def two_stores(tmp_path: Path) -> tuple[list[Path], list[np.ndarray]]:
    a, pa = make_store(tmp_path, "a", n=12, seed=1)
    b, pb = make_store(tmp_path, "b", n=7, seed=2)
    return [a, b], [pa, pb]


def test_identity_batches_equal_store_contents(two_stores) -> None:
    paths, patches = two_stores
    ds = PatchDataset(paths, image_px=32, dihedral=False)
    assert len(ds) == 19
    idx = np.array([18, 0, 13, 5, 5, 12, 11])  # both stores, unsorted, a repeat
    batch = ds.get_batch(idx)
    slide, patch = batch["slide"].numpy(), batch["index"].numpy()
    assert batch["image"].shape == (7, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert slide.tolist() == [1, 0, 1, 0, 0, 1, 0] and patch.tolist() == [6, 0, 1, 5, 5, 0, 11]
    ref = np.stack([patches[s][p] for s, p in zip(slide, patch, strict=True)])
    assert torch.equal(batch["image"], as_float(ref))
    stores = [PatchStore(p) for p in paths]
    for i in (0, 11, 12, 18):
        item = ds[i]
        assert isinstance(item["slide"], int) and isinstance(item["index"], int)
        assert torch.equal(item["image"], as_float(stores[item["slide"]].read([item["index"]]))[0])
    assert torch.equal(ds[list(idx)]["image"], batch["image"])
    assert torch.equal(ds[BatchKey(3, idx)]["image"], batch["image"])
    with pytest.raises(IndexError):
        ds.get_batch([19])


def test_samples_carry_label_coords_and_slide_id_like_batches(two_stores) -> None:
    """ds[i] has every key of get_batch (the label too, which it used to drop), and a plain
    DataLoader's default collation of samples gives get_batch's batch."""
    paths, _ = two_stores
    labels = [np.array([0, 1, -1] * 4), np.array([1, -1, 0, 0, 1, 1, 0])]  # -1: unlabelled, left out
    ds = PatchDataset(paths, image_px=24, labels=labels, seed=5)  # random crops and dihedral: seeded per item
    stores = [PatchStore(p) for p in paths]
    assert len(ds) == 8 + 6
    batch = ds.get_batch(np.arange(len(ds)))
    assert set(batch) == {"image", "slide", "index", "item", "coords", "slide_id", "label"}
    assert batch["coords"].dtype == torch.int64 and batch["coords"].shape == (14, 2)
    for i in range(len(ds)):
        item = ds[i]
        k, j = item["slide"], item["index"]
        assert set(item) == set(batch)
        assert item["label"] == labels[k][j] >= 0 and item["item"] == i
        assert item["slide_id"] == stores[k].slide_id and item["coords"].tolist() == stores[k].coords[j].tolist()
        assert torch.equal(item["image"], batch["image"][i]) and item["slide_id"] == batch["slide_id"][i]
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False)
    first = next(iter(loader))
    assert first["slide_id"] == batch["slide_id"][:5]
    for key in ("image", "slide", "index", "item", "coords", "label"):
        assert torch.equal(first[key], batch[key][:5]), key


def test_crop_and_resize_shapes_and_pixels(tmp_path: Path) -> None:
    path, patches = make_store(tmp_path, "big", n=6, patch_px=48)
    rand = PatchDataset([path], image_px=32, dihedral=False)  # crop, random offsets
    got = rand.get_batch(np.arange(6))["image"]
    assert got.shape == (6, 3, 32, 32)
    offsets = set()
    for img, patch in zip(got, patches, strict=True):
        hits = [(y, x) for y in range(17) for x in range(17)
                if torch.equal(img, as_float(patch[None, y : y + 32, x : x + 32])[0])]
        assert len(hits) == 1  # an exact sub-array of the stored patch
        offsets.add(hits[0])
    assert len(offsets) > 1  # offsets are random, not all centred
    centre = PatchDataset([path], image_px=32, dihedral=False, random_crop=False).get_batch(np.arange(6))["image"]
    assert torch.equal(centre, as_float(patches[:, 8:40, 8:40]))
    resized = PatchDataset([path], image_px=24, dihedral=False, resize_mode="resize").get_batch([0, 1])["image"]
    assert resized.shape == (2, 3, 24, 24) and resized.min() >= 0 and resized.max() <= 1
    ref = F.interpolate(as_float(patches[:2]), size=(24, 24), mode="bilinear", antialias=True)
    torch.testing.assert_close(resized, ref)
    # patch_px == image_px: returned as stored, whatever the mode
    ident_path, ident = make_store(tmp_path, "id", n=2, patch_px=32)
    same = PatchDataset([ident_path], image_px=32, resize_mode="resize", dihedral=False)
    assert torch.equal(same.get_batch([0, 1])["image"], as_float(ident))


def test_filters_match_numpy_reference(tmp_path: Path) -> None:
    n = 40
    rng = np.random.default_rng(5)
    tissue, white, pen = rng.random(n), rng.random(n), rng.random(n) * 0.2
    blur = rng.random(n) * 200
    blur[3] = np.nan
    path, _ = make_store(tmp_path, "f", n=n, tissue=tissue, white=white, pen=pen, blur=blur, per_shard=16)
    # the store keeps float32; the reference uses what is stored
    t32, w32, p32, b32 = (np.float32(v).astype(np.float64) for v in (tissue, white, pen, blur))
    ds = PatchDataset([path], image_px=32, min_tissue_fraction=0.4, max_white_fraction=0.6,
                      max_pen_fraction=0.1, min_blur=50.0)
    expected = np.flatnonzero((t32 >= 0.4) & (w32 <= 0.6) & (p32 <= 0.1) & (b32 >= 50.0))
    assert 0 < len(expected) < n
    np.testing.assert_array_equal(ds.locate(np.arange(len(ds)))[1], expected)
    loose = PatchDataset([path], image_px=32, min_tissue_fraction=None, max_white_fraction=None)
    assert len(loose) == n
    assert describe(ds)["stores"][0]["n_kept"] == len(expected)


def test_all_filtered_out_says_how_many_by_which_filter(tmp_path: Path) -> None:
    tissue = np.array([0.1, 0.2, 0.9, 0.9, 0.9])
    white = np.array([0.0, 0.0, 0.8, 0.9, 0.0])
    path, _ = make_store(tmp_path, "e", n=5, tissue=tissue, white=white, pen=np.array([0, 0, 0, 0, 0.5]))
    with pytest.raises(ConfigError, match=r"all 5 patch\(es\) of 1 store\(s\) were filtered out "
                       r"\(2 by tissue_fraction < 0.5, 2 by white_fraction > 0.3, 1 by pen_fraction > 0.1\)"):
        PatchDataset([path], image_px=32, max_pen_fraction=0.1)


def test_dihedral_outputs_are_symmetries_of_the_stored_patch(tmp_path: Path) -> None:
    path, patches = make_store(tmp_path, "d", n=16)
    ds = PatchDataset([path], image_px=32, dihedral=True, seed=3)
    seen = set()
    for epoch in range(3):
        got = ds.get_batch(np.arange(16), epoch=epoch)["image"]
        for img, patch in zip(got, patches, strict=True):
            matches = [k for k, t in enumerate(eight(patch)) if torch.equal(img, as_float(t[None])[0])]
            assert len(matches) == 1
            seen.add(matches[0])
    assert len(seen) >= 6  # all 8 are reachable; 48 draws cover most of them
    again = ds.get_batch(np.arange(16), epoch=1)["image"]
    assert torch.equal(again, ds.get_batch(np.arange(16), epoch=1)["image"])


def _noise(images: torch.Tensor) -> torch.Tensor:
    """A transform drawing from the global torch RNG (module level, so workers can unpickle it)."""
    return (images + 0.01 * torch.rand(images.shape[0], 3, 1, 1)).clamp(0, 1)


def test_same_batches_whatever_the_worker_count(tmp_path: Path) -> None:
    paths = [make_store(tmp_path, f"w{i}", n=20, patch_px=40, seed=i)[0] for i in range(3)]
    ds = PatchDataset(paths, image_px=32, dihedral=True, transform=_noise, seed=7)
    runs = []
    for workers in (0, 2):
        loader = make_loader(ds, 16, shuffle=True, seed=11, num_workers=workers)
        assert len(loader) == 60 // 16
        runs.append([[b["image"], b["item"]] for _ in range(2) for b in loader])  # epochs 0 and 1
    for (img0, item0), (img2, item2) in zip(*runs, strict=True):
        assert torch.equal(item0, item2) and torch.equal(img0, img2)
    items = [b[1] for b in runs[0]]
    assert not torch.equal(torch.cat(items[:3]), torch.cat(items[3:]))  # a new order each epoch
    assert len(set(torch.cat(items[:3]).tolist())) == 48  # no repeats inside an epoch
    loader = make_loader(ds, 16, shuffle=False, seed=0, num_workers=0, drop_last=False)
    assert [len(b["item"]) for b in loader] == [16, 16, 16, 12]


def test_sampler_epochs_and_resume() -> None:
    s = EpochBatchSampler(10, 4, shuffle=True, seed=1, drop_last=True)
    first, second = list(s), list(s)
    assert [k.epoch for k in first] == [0, 0] and [k.epoch for k in second] == [1, 1]
    s.set_epoch(1)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(list(s), second, strict=True))
    with pytest.raises(ConfigError, match="fewer than batch_size=16"):
        EpochBatchSampler(10, 16, shuffle=True, seed=0, drop_last=True)


def test_split_stores_by_slide(tmp_path: Path) -> None:
    free = [make_store(tmp_path, f"s{i}", n=2)[0] for i in range(10)]
    again = make_store(tmp_path, "s3", n=2, patch_px=64)[0]  # a second store of slide s3
    fixed_test = make_store(tmp_path, "t", n=2, split="test")[0]
    fixed_train = make_store(tmp_path, "u", n=2, split="train")[0]
    stores = [*free, again, fixed_test, fixed_train]
    out = split_stores(stores, val_fraction=0.2, seed=0)
    assert out == split_stores(list(reversed(stores)), val_fraction=0.2, seed=0)  # deterministic, order-free
    assert out["test"] == [fixed_test] and fixed_train in out["train"]
    slide_of = {p: PatchStore(p).slide_id for p in stores}
    val_slides = {slide_of[p] for p in out["val"]}
    train_slides = {slide_of[p] for p in out["train"]}
    assert len(val_slides) == 2 and not val_slides & train_slides
    assert sorted(p for paths in out.values() for p in paths) == sorted(stores)
    assert (free[3] in out["val"]) == (again in out["val"])  # one slide, one split
    assert any(split_stores(stores, val_fraction=0.2, seed=s)["val"] != out["val"] for s in range(1, 6))
    two = split_stores(free[:2], val_fraction=0.1, seed=0)
    assert len(two["val"]) == 1 and len(two["train"]) == 1
    assert split_stores(free[:2], val_fraction=0.0, seed=0)["val"] == []
    clash = make_store(tmp_path, "t", n=2, patch_px=64, split="val")[0]
    with pytest.raises(ConfigError, match=r"slide 't' has stores in two splits"):
        split_stores([fixed_test, clash], val_fraction=0.2, seed=0)


def test_pickle_carries_paths_not_open_stores(two_stores) -> None:
    paths, patches = two_stores
    ds = PatchDataset(paths, image_px=32, dihedral=False)
    ds.get_batch([0, 15])  # stores are open in this process now
    blob = pickle.dumps(ds)
    assert len(blob) < 8_000 and b"PatchStore" not in blob
    clone = pickle.loads(blob)
    assert clone._open is None
    assert torch.equal(clone.get_batch([0, 15])["image"], as_float(np.stack([patches[0][0], patches[1][3]])))


def test_mixed_mpp_and_small_patches_refused(tmp_path: Path) -> None:
    a = make_store(tmp_path, "a", mpp=0.5)[0]
    b = make_store(tmp_path, "b", mpp=1.0)[0]
    with pytest.raises(ConfigError, match=r"different resolutions.*a-32-0.5.zarr \(a\): 0.5.*\(b\): 1"):
        PatchDataset([a, b], image_px=32)
    c = make_store(tmp_path, "c", mpp=0.5, patch_px=64)[0]
    assert len(PatchDataset([a, c], image_px=32)) == 24  # crops keep the MPP
    with pytest.raises(ConfigError, match="different resolutions"):
        PatchDataset([a, c], image_px=32, resize_mode="resize")  # resizing 64 -> 32 doubles it
    with pytest.raises(ConfigError, match=rf"store {a} \(slide 'a'\) has patch_px=32, smaller than the model's image_px=56"):
        PatchDataset([a], image_px=56)


def test_incomplete_store_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nothing\.zarr"):
        PatchDataset([tmp_path / "nothing.zarr"], image_px=32)


def test_fingerprint_and_describe(two_stores, tmp_path: Path) -> None:
    paths, _ = two_stores
    ds = PatchDataset(paths, image_px=32)
    assert data_fingerprint(ds) == data_fingerprint(PatchDataset(paths[::-1], image_px=32))
    assert data_fingerprint(ds) != data_fingerprint(PatchDataset(paths, image_px=32, min_tissue_fraction=0.9))
    assert data_fingerprint(paths) == data_fingerprint([PatchStore(p) for p in reversed(paths)])
    assert len(data_fingerprint(paths)) == 64
    info = describe(ds)
    assert info["n_patches"] == 19 and info["mpp"] == 0.5 and info["patch_px"] == [32]
    assert [s["n_patches"] for s in info["stores"]] == [12, 7] and info["fingerprint"] == data_fingerprint(ds)
    import json

    json.dumps(info)


def test_sampler_resumes_mid_epoch_and_shards_by_rank() -> None:
    from pathgan.data import EpochBatchSampler

    full = EpochBatchSampler(20, 4, shuffle=True, seed=7, drop_last=True)
    first = [k.indices.tolist() for k in full]  # epoch 0
    resumed = EpochBatchSampler(20, 4, shuffle=True, seed=7, drop_last=True)
    resumed.set_epoch(0, start=2)
    assert [k.indices.tolist() for k in resumed] == first[2:]
    assert resumed.epoch == 1 and [k.epoch for k in resumed] == [1] * 5  # next pass: a whole new epoch
    halves = [EpochBatchSampler(20, 4, shuffle=True, seed=7, drop_last=True, rank=r, world=2) for r in (0, 1)]
    for b0, b1, whole in zip(halves[0], halves[1], first, strict=True):
        assert sorted(b0.indices.tolist() + b1.indices.tolist()) == sorted(whole)
        assert b0.indices.tolist() == whole[0::2]
