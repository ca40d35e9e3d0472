"""The pure parts of synthetic export: class centroids and the sampler, seeds, latent text, label CSVs,
and the synthetic store writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathgan.downstream._synthetic import (
    ClassCentroids,
    ExportConfig,
    check_class_name,
    format_latent,
    image_seeds,
    parse_latent,
    read_label_csv,
    truncate,
    z_from_seeds,
)
from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.store import PatchStore, SyntheticStoreWriter


def _three_classes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    centres = {"a": rng.normal(0, 3, 6), "b": rng.normal(0, 3, 6), "c": rng.normal(0, 3, 6)}
    w = np.concatenate([centres[k] + rng.normal(0, 1, (n, 6)) for k, n in (("a", 50), ("b", 30), ("c", 20))])
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    return w.astype(np.float32), labels, centres


def test_centroids_match_plain_means_and_span_the_differences() -> None:
    w, lab, _ = _three_classes()
    cc = ClassCentroids.fit(w, lab)
    assert cc.names == ("a", "b", "c") and cc.counts.tolist() == [50, 30, 20]
    for i, k in enumerate(cc.names):
        np.testing.assert_allclose(cc.means[i], w[lab == k].astype(np.float64).mean(0), atol=1e-9)
    assert cc.basis.shape == (2, 6)  # K - 1 differences
    np.testing.assert_allclose(cc.basis @ cc.basis.T, np.eye(2), atol=1e-12)
    # every centroid difference lies in the span: projecting it out leaves nothing
    diffs = cc.means[[1, 2]] - cc.means[0]
    np.testing.assert_allclose(cc.project_out(diffs), 0, atol=1e-9)
    # rms: the class's spread in the complement, by hand
    r = w[lab == "b"] - w[lab == "b"].mean(0)
    r = r - (r @ cc.basis.T) @ cc.basis
    assert cc.rms[1] == pytest.approx(np.sqrt((r**2).sum(1).mean()), rel=1e-6)


def test_samples_are_nearest_their_own_centroid_and_truncation_zero_is_the_centroid() -> None:
    w, lab, _ = _three_classes(1)
    cc = ClassCentroids.fit(w, lab)
    rng = np.random.default_rng(5)
    w_gen = rng.normal(0, 4, (200, 6))  # a broad "generator" distribution
    w_avg = w_gen.mean(0)
    for k in cc.names:
        s = cc.sample(k, w_gen, w_avg=w_avg, truncation=1.0)
        d = np.linalg.norm(s[:, None, :].astype(np.float64) - cc.means[None], axis=2)  # [200, K]
        assert (d.argmin(1) == cc.index(k)).all()
        zero = cc.sample(k, w_gen, w_avg=w_avg, truncation=0.0)
        np.testing.assert_array_equal(zero, np.broadcast_to(cc.centroid(k), zero.shape))
        half = cc.sample(k, w_gen, w_avg=w_avg, truncation=0.5)
        np.testing.assert_allclose(half - cc.centroid(k), 0.5 * (s - cc.centroid(k)), atol=1e-5)
    # the naive shift w + (mu_c - mu_all) does not have this property on these classes
    shifted = w_gen + (cc.means[0] - cc.means.mean(0))
    d = np.linalg.norm(shifted[:, None, :] - cc.means[None], axis=2)
    assert (d.argmin(1) != 0).mean() > 0.1


def test_one_class_and_identical_centroids_have_no_basis() -> None:
    w = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    cc = ClassCentroids.fit(w, ["x"] * 10)
    assert cc.basis.shape == (0, 4)
    same = ClassCentroids.fit(np.concatenate([w, w]), ["x"] * 10 + ["y"] * 10)
    assert same.basis.shape == (0, 4)
    out = cc.sample("x", w, w_avg=np.zeros(4), truncation=1.0)
    np.testing.assert_allclose(out, cc.means[0] + w, atol=1e-6)


def test_unknown_class_lists_known_ones_and_bad_inputs() -> None:
    w, lab, _ = _three_classes()
    cc = ClassCentroids.fit(w, lab)
    with pytest.raises(ConfigError, match=r"unknown class 'd'.*\['a', 'b', 'c'\]"):
        cc.sample("d", w, w_avg=np.zeros(6), truncation=1.0)
    with pytest.raises(ShapeError, match=r"\[n, 6\]"):
        cc.sample("a", w[:, :3], w_avg=np.zeros(6), truncation=1.0)
    with pytest.raises(ShapeError, match="NaN"):
        ClassCentroids.fit(np.full((2, 3), np.nan), ["a", "b"])
    with pytest.raises(ShapeError):
        ClassCentroids.fit(w, lab[:-1])


def test_truncate_is_the_truncation_trick() -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    avg = np.ones(4, np.float32)
    np.testing.assert_allclose(truncate(w, avg, 0.5), avg + 0.5 * (w - avg))
    np.testing.assert_array_equal(truncate(w, avg, 0.0), np.broadcast_to(avg, w.shape))


def test_seeds_are_stable_per_class_and_prefix() -> None:
    a = image_seeds(0, "tumor", 10)
    assert a.dtype == np.uint64 and len(set(a.tolist())) == 10
    np.testing.assert_array_equal(image_seeds(0, "tumor", 4), a[:4])  # more images keep the first ones
    assert not set(a.tolist()) & set(image_seeds(0, "stroma", 10).tolist())
    assert not set(a.tolist()) & set(image_seeds(1, "tumor", 10).tolist())
    z = z_from_seeds(a[:3], 5)
    np.testing.assert_array_equal(z[1], np.random.default_rng(int(a[1])).standard_normal(5).astype(np.float32))


def test_latent_text_round_trips_float32_exactly() -> None:
    w = np.random.default_rng(0).normal(0, 3, 4000).astype(np.float32)
    w[:4] = [0.1, -1.2345678e-30, 3.4e38, 0.0]
    text = format_latent(w)
    np.testing.assert_array_equal(parse_latent(text), w)
    assert len(text.split()) == len(w)


def test_export_config_validation() -> None:
    assert ExportConfig(n=3).class_names == ("unconditional",)
    assert ExportConfig(n=3, classes=("a", "b")).class_names == ("a", "b")
    for bad, match in [({"n": 0}, "n=0"), ({"n": 2, "truncation": 1.5}, "truncation"),
                       ({"n": 2, "classes": ("a", "a")}, "more than once"), ({"n": 2, "format": "jpg"}, "format"),
                       ({"n": 2, "classes": ("../x",)}, "folder name"), ({"n": 2, "seed": -1}, "seed"),
                       ({"n": 2, "spread": "wide"}, "spread"), ({"n": 2, "batch_size": 0}, "batch_size")]:
        with pytest.raises(ConfigError, match=match):
            ExportConfig(**bad)  # type: ignore[arg-type]
    for name in ("", ".", "..", "a/b", " a"):
        with pytest.raises(ConfigError):
            check_class_name(name)


def test_label_csv_slide_and_tile(tmp_path: Path) -> None:
    p = tmp_path / "slides.csv"
    p.write_text("slide_id,path,label,split\na,x.svs,tumor,train\nb,y.svs,,train\nc,z.svs,stroma,val\n")
    t = read_label_csv(p)
    assert not t.per_tile and t.slide == {"a": "tumor", "c": "stroma"}
    p.write_text("slide_id,x,y,label\na,0,0,tumor\na,32,0,stroma\nb,64,32,tumor\n")
    t = read_label_csv(p)
    assert t.per_tile and t.tile == {"a": {(0, 0): "tumor", (32, 0): "stroma"}, "b": {(64, 32): "tumor"}}
    p.write_text("slide_id,x,y,label\na,0,0,tumor\na,0,0,stroma\na,1.5,0,tumor\n,0,0,x\n")
    with pytest.raises(ConfigError, match=r"(?s)3 problem.*line 3.*both.*line 4.*integers.*line 5.*empty slide_id"):
        read_label_csv(p)
    p.write_text("slide,label\na,b\n")
    with pytest.raises(ConfigError, match="missing column"):
        read_label_csv(p)
    with pytest.raises(ConfigError, match=r"absent\.csv: file does not exist"):
        read_label_csv(tmp_path / "absent.csv")
    p.write_text("slide_id,label\na,tumor,extra\nb,stroma\n")  # a row longer than the header
    assert read_label_csv(p).slide == {"a": "tumor", "b": "stroma"}


def test_synthetic_store_writer_buffers_whole_shards(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (11, 8, 8, 3), dtype=np.uint8)
    final = tmp_path / "synthetic.zarr"
    w = SyntheticStoreWriter(final, labels=np.array([0] * 6 + [1] * 5), class_names=["a", "b"], patch_px=8,
                             patches_per_shard=4)
    for s, e in [(0, 3), (3, 8), (8, 9), (9, 11)]:  # batches that straddle the shards
        w.add(patches[s:e], np.arange(s, e, dtype=np.float32), np.zeros(e - s))
    assert not final.exists()
    w.finish({"source": {"synthetic": True}, "mpp_requested": 0.5, "mpp_effective": [0.5, 0.5],
              "source_level": None, "config": {}, "pathgan_version": "test"})
    st = PatchStore(final)
    assert st.synthetic and st.slide_id == "synthetic" and len(st) == 11 and st.patch_px == 8
    np.testing.assert_array_equal(st.read(slice(0, 11)), patches)  # lossless
    np.testing.assert_array_equal(st.qc("blur"), np.arange(11))
    assert st.labels().tolist() == ["a"] * 6 + ["b"] * 5
    assert len({tuple(c) for c in st.coords}) == 11 and (st.tissue_fraction == 1).all()
    with pytest.raises(ShapeError, match="labels must lie"):
        SyntheticStoreWriter(tmp_path / "x.zarr", labels=np.array([0, 2]), class_names=["a", "b"], patch_px=8)
    w2 = SyntheticStoreWriter(tmp_path / "y.zarr", labels=np.zeros(3, int), class_names=["a"], patch_px=8)
    with pytest.raises(ShapeError, match="uint8"):
        w2.add(patches[:2, :4], np.zeros(2), np.zeros(2))
    with pytest.raises(StoreError, match="only 0 of 3"):
        w2.finish({})


def test_one_label_reader_two_rule_sets(tmp_path: Path) -> None:
    """The same file through the lenient rules (train-latent, export-synthetic) and the strict ones
    (classify): an empty label and a repeated tile are harmless in one and problems in the other."""
    p = tmp_path / "tiles.csv"
    p.write_text("slide_id,x,y,label\na,0,0,tumor\na,0,0,tumor\na,32.0,0,\nb,64,32,stroma\n")
    lenient = read_label_csv(p)
    assert lenient.tile == {"a": {(0, 0): "tumor"}, "b": {(64, 32): "stroma"}}  # "32.0" parsed, empty skipped
    assert lenient.lines == {("a", 0, 0): 2, ("b", 64, 32): 5}
    with pytest.raises(ConfigError, match=r"(?s)2 problem.*line 3: tile \(0, 0\) of slide 'a' is labelled twice "
                                          r"\(first in line 2\).*line 4: label is empty"):
        read_label_csv(p, strict=True)
    seen: list[tuple[str, tuple[int, int]]] = []

    def check(sid: str, xy: tuple[int, int]) -> str | None:
        seen.append((sid, xy))
        return "no such patch" if sid == "b" else None

    with pytest.raises(ConfigError, match=r"line 5: no such patch"):
        read_label_csv(p, check=check)
    assert seen == [("a", (0, 0)), ("a", (0, 0)), ("a", (32, 0)), ("b", (64, 32))]  # every tile row checked
    q = tmp_path / "slides.csv"
    q.write_text("slide_id,label\na,tumor\n")
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['x', 'y'\]"):
        read_label_csv(q, tiles_only=True)
