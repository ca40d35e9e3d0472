"""export-synthetic on a tiny trained run with encoded, labelled stores: files, CSV provenance that
regenerates the pixels, class placement in w, truncation, the Zarr output, determinism, errors, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _tiny import TINY, make_tiny_store, register_tiny
from click.testing import CliRunner
from PIL import Image

from pathgan.cli import main
from pathgan.config import EncoderConfig, TrainConfig
from pathgan.downstream import ExportConfig
from pathgan.errors import ConfigError, StoreError
from pathgan.latents import LatentModel
from pathgan.stages.export_synthetic import CSV_COLUMNS, export_synthetic
from pathgan.store import PatchStore

pytestmark = pytest.mark.slow  # every test here trains a network or starts a Dask cluster

LABELS = {"a": "tumor", "b": "stroma", "c": "tumor"}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A 4-step tiny run with a 5-step encoder; three stores with slide labels, all encoded."""
    from pathgan.stages.encode import encode_stores
    from pathgan.stages.train import train_latent
    from pathgan.stages.train_encoder import train_encoder

    register_tiny()
    root = tmp_path_factory.mktemp("synthetic")
    stores = [make_tiny_store(root / "stores" / "a.zarr", 48, 1, "train", label="tumor"),
              make_tiny_store(root / "stores" / "b.zarr", 32, 2, "train", label="stroma"),
              make_tiny_store(root / "stores" / "c.zarr", 32, 3, "val", label="tumor")]
    cfg = TrainConfig(model=TINY, batch_size=8, n_critic=1, steps=4, sample_every=100, checkpoint_every=100,
                      log_every=1, n_samples=4, seed=3, min_tissue_fraction=0.0, max_white_fraction=1.0)
    run_dir = train_latent([root / "stores"], cfg, runs_root=root / "runs", device="cpu", progress=False)
    train_encoder(run_dir, EncoderConfig(steps=5, batch_size=16, lr=2e-3, log_every=5, checkpoint_every=1000,
                                         n_eval=16), device="cpu", eval_refine_steps=0, progress=False)
    rows = encode_stores(LatentModel.load(run_dir), stores, progress=False)
    assert all(r.status == "encoded" for r in rows), rows
    return run_dir, stores


def _centroids(run_id: str, stores: list[Path]) -> dict[str, np.ndarray]:
    """Class means computed directly from the stores (independent of the exporter)."""
    by: dict[str, list[np.ndarray]] = {}
    for p in stores:
        s = PatchStore(p)
        by.setdefault(str(s.attrs["label"]), []).append(s.latents(run_id))
    return {k: np.concatenate(v).astype(np.float64).mean(0) for k, v in by.items()}


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "synthetic.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _latents(rows: list[dict[str, str]]) -> np.ndarray:
    return np.stack([np.asarray([float(v) for v in r["latent"].split()], np.float32) for r in rows])


def test_class_export_files_csv_pixels_and_store(encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, stores = encoded
    out = tmp_path / "out"
    got = export_synthetic(run_dir, ExportConfig(n=6, classes=("tumor", "stroma"), format="both", batch_size=4),
                           out=out, progress=False)
    assert got == out and not (tmp_path / "out.partial").exists()
    m = LatentModel.load(run_dir)
    # ImageFolder tree: n files per class, nothing else
    assert sorted(p.name for p in out.iterdir()) == ["latents.npy", "stroma", "synthetic.csv", "synthetic.json",
                                                     "synthetic.zarr", "tumor"]
    assert len(list((out / "tumor").glob("*.png"))) == 6 and len(list((out / "stroma").glob("*.png"))) == 6
    # CSV: columns, one row per image, provenance
    with (out / "synthetic.csv").open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS
    rows = _rows(out)
    assert [int(r["index"]) for r in rows] == list(range(12))
    assert [r["class"] for r in rows] == ["tumor"] * 6 + ["stroma"] * 6
    assert all(r["checkpoint_sha256"] == m.checkpoint_sha256 and float(r["truncation"]) == 0.7 for r in rows)
    assert len({r["seed"] for r in rows}) == 12
    # the CSV's latents are the .npy's, and regenerate the saved PNG pixels exactly
    w = _latents(rows)
    np.testing.assert_array_equal(w, np.load(out / "latents.npy"))
    pngs = np.stack([np.asarray(Image.open(out / r["file"]).convert("RGB")) for r in rows])
    assert pngs.shape == (12, m.image_px, m.image_px, 3)
    np.testing.assert_array_equal(m.generate(w), pngs)
    # ... and the CSV's seed regenerates the latent: z = sample_z(1, seed), the class transform by hand
    cent = _centroids(m.run_id, stores)
    d = cent["tumor"] - cent["stroma"]
    u = d / np.linalg.norm(d)
    r0 = rows[7]
    w_z = m.to_w(m.sample_z(1, seed=int(r0["seed"])))[0].astype(np.float64) - m.mean_w
    expect = cent["stroma"] + 0.7 * (w_z - (w_z @ u) * u)
    np.testing.assert_allclose(w[7], expect, atol=1e-5)
    # the Zarr output: the real stores' schema, synthetic, labelled, the same pixels
    st = PatchStore(out / "synthetic.zarr")
    assert st.synthetic and st.attrs["synthetic"] is True and st.slide_id == "synthetic"
    assert len(st) == 12 and st.patch_px == m.image_px and st.mpp == 1.0  # the run's data.patch_mpp
    assert st.labels().tolist() == [r["class"] for r in rows]
    np.testing.assert_array_equal(st.read(slice(0, 12)), pngs)
    assert len({tuple(c) for c in st.coords}) == 12 and (st.tissue_fraction == 1).all()
    assert np.isfinite(st.qc("blur")).all() and np.isfinite(st.qc("white_fraction")).all()
    assert st.attrs["source"]["checkpoint_sha256"] == m.checkpoint_sha256
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["class_statistics"]["classes"]["tumor"]["n_latents"] == 80  # stores a + c
    assert meta["run"]["checkpoint_sha256"] == m.checkpoint_sha256


def test_samples_sit_nearest_their_class_and_truncation_zero_is_the_centroid(
        encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, stores = encoded
    m = LatentModel.load(run_dir)
    cent = _centroids(m.run_id, stores)
    out = export_synthetic(run_dir, ExportConfig(n=16, classes=("tumor", "stroma"), truncation=1.0),
                           out=tmp_path / "t1", progress=False)
    rows = _rows(out)
    w = _latents(rows).astype(np.float64)
    for k, other in (("tumor", "stroma"), ("stroma", "tumor")):
        wk = w[[r["class"] == k for r in rows]]
        own = np.linalg.norm(wk - cent[k], axis=1).mean()
        far = np.linalg.norm(wk - cent[other], axis=1).mean()
        assert own < far, (k, own, far)
    out0 = export_synthetic(run_dir, ExportConfig(n=5, classes=("tumor", "stroma"), truncation=0.0),
                            out=tmp_path / "t0", progress=False)
    rows0 = _rows(out0)
    w0 = _latents(rows0)
    for k in ("tumor", "stroma"):
        wk = w0[[r["class"] == k for r in rows0]]
        assert (wk == wk[0]).all()
        np.testing.assert_allclose(wk[0], cent[k], atol=1e-5)


def test_unconditional_export_and_determinism(encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, _ = encoded
    m = LatentModel.load(run_dir)
    cfg = ExportConfig(n=5, seed=7, truncation=0.5)
    a = export_synthetic(run_dir, cfg, out=tmp_path / "a", progress=False)
    b = export_synthetic(run_dir, cfg, out=tmp_path / "b", progress=False)
    c = export_synthetic(run_dir, ExportConfig(n=5, seed=8, truncation=0.5), out=tmp_path / "c", progress=False)
    ra, rb, rc = _rows(a), _rows(b), _rows(c)
    assert [r["class"] for r in ra] == ["unconditional"] * 5
    assert ra == rb and _latents(ra).tolist() != _latents(rc).tolist()
    for r in ra:
        assert (a / r["file"]).read_bytes() == (b / r["file"]).read_bytes()
    # the truncation trick around the mean w, from the row's seed
    w = m.to_w(m.sample_z(1, seed=int(ra[2]["seed"])))[0]
    np.testing.assert_allclose(_latents(ra)[2], m.mean_w + 0.5 * (w - m.mean_w), atol=1e-6)
    z0 = export_synthetic(run_dir, ExportConfig(n=3, truncation=0.0, format="zarr"), out=tmp_path / "z",
                          progress=False)
    assert not (z0 / "unconditional").exists() and all(r["file"] == "" for r in _rows(z0))
    np.testing.assert_allclose(_latents(_rows(z0)), np.broadcast_to(m.mean_w, (3, m.w_dim)), atol=1e-6)


def test_tile_label_csv_and_class_spread(encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, stores = encoded
    m = LatentModel.load(run_dir)
    s = PatchStore(stores[0])
    csv_path = tmp_path / "tiles.csv"
    csv_path.write_text("slide_id,x,y,label\n" + "".join(
        f"a,{x},{y},{'lymph' if i < 10 else 'fat'}\n" for i, (x, y) in enumerate(s.coords[:25])))
    out = export_synthetic(run_dir, ExportConfig(n=48, classes=("lymph",), truncation=1.0, spread="class"),
                           out=tmp_path / "o", labels=csv_path, progress=False)
    w_real = s.latents(m.run_id).astype(np.float64)
    lymph, fat = w_real[:10].mean(0), w_real[10:25].mean(0)
    u = (lymph - fat) / np.linalg.norm(lymph - fat)
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["class_statistics"]["classes"]["lymph"]["n_latents"] == 10
    w = _latents(_rows(out)).astype(np.float64) - lymph
    assert np.abs(w @ u).max() < 1e-4  # nothing along the class difference
    r_real = (w_real[:10] - lymph) - np.outer((w_real[:10] - lymph) @ u, u)
    rms_real = np.sqrt((r_real**2).sum(1).mean())
    rms_gen = np.sqrt((w**2).sum(1).mean())
    assert rms_gen == pytest.approx(rms_real, rel=0.35)  # the class's own spread (48 samples)
    bad = tmp_path / "bad.csv"
    bad.write_text("slide_id,x,y,label\na,1,1,lymph\n")
    with pytest.raises(ConfigError, match=r"no labelled patches.*level-0"):
        export_synthetic(run_dir, ExportConfig(n=1, classes=("lymph",)), out=tmp_path / "x", labels=bad,
                         progress=False)


def test_errors(encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, _ = encoded
    with pytest.raises(ConfigError, match=r"unknown class 'necrosis'.*\['stroma', 'tumor'\]"):
        export_synthetic(run_dir, ExportConfig(n=2, classes=("necrosis",)), out=tmp_path / "u", progress=False)
    assert not (tmp_path / "u").exists() and not (tmp_path / "u.partial").exists()
    with pytest.raises(ConfigError, match="n=0"):
        ExportConfig(n=0)
    out = export_synthetic(run_dir, ExportConfig(n=2, seed=1), out=tmp_path / "e", progress=False)
    before = _rows(out)
    with pytest.raises(ConfigError, match=r"already exists.*--overwrite"):
        export_synthetic(run_dir, ExportConfig(n=3), out=out, progress=False)
    assert _rows(out) == before
    export_synthetic(run_dir, ExportConfig(n=3), out=out, overwrite=True, progress=False)
    assert len(_rows(out)) == 3 and len(list(out.parent.glob("e.*"))) == 0
    # stores without latents of this run
    fresh = make_tiny_store(tmp_path / "fresh" / "f.zarr", 8, 9, label="tumor")
    with pytest.raises(StoreError, match="no latents"):
        export_synthetic(run_dir, ExportConfig(n=1, classes=("tumor",)), out=tmp_path / "f", stores=[fresh],
                         progress=False)
    unlabelled = make_tiny_store(tmp_path / "fresh2" / "g.zarr", 8, 9)
    with pytest.raises(ConfigError, match="none of the 1 store"):
        export_synthetic(run_dir, ExportConfig(n=1, classes=("tumor",)), out=tmp_path / "g", stores=[unlabelled],
                         progress=False)


def test_cli(encoded: tuple[Path, list[Path]], tmp_path: Path) -> None:
    run_dir, stores = encoded
    out = tmp_path / "cli"
    args = ["export-synthetic", "--run", str(run_dir), "--device", "cpu", "--no-progress"]
    r = CliRunner().invoke(main, [*args, "--n", "3", "--class", "tumor", "--format", "both", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "3 synthetic patches (tumor)" in r.output
    assert len(list((out / "tumor").glob("*.png"))) == 3 and PatchStore(out / "synthetic.zarr").synthetic
    r = CliRunner().invoke(main, [*args, "--n", "3", "--class", "tumor", "--out", str(out)])
    assert r.exit_code != 0 and "--overwrite" in r.output
    r = CliRunner().invoke(main, [*args, "--n", "0", "--out", str(tmp_path / "z")])
    assert r.exit_code != 0 and "--n" in r.output
    r = CliRunner().invoke(main, [*args, "--n", "2", "--class", "bone", "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "unknown class 'bone'" in r.output and "stroma" in r.output
    lab = tmp_path / "labels.csv"
    lab.write_text("slide_id,label\na,left\nb,right\n")
    r = CliRunner().invoke(main, [*args, "--n", "2", "--class", "left", "--class", "right", "--labels", str(lab),
                                  "--stores", str(stores[0].parent), "--truncation", "0", "--out", str(tmp_path / "l")])
    assert r.exit_code == 0, r.output
    assert [row["class"] for row in _rows(tmp_path / "l")] == ["left", "left", "right", "right"]


def test_latents_of_another_checkpoint_and_missing_run_stores(encoded: tuple[Path, list[Path]],
                                                               tmp_path: Path) -> None:
    import shutil

    import yaml

    from pathgan.train import load_checkpoint, save_checkpoint

    run_dir, stores = encoded
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("encoder*"))
    ckpt = sorted((copy / "checkpoints").glob("step-*.pt"))[-1]
    state = load_checkpoint(ckpt)
    state["ema"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["ema"].items()}
    state.pop("format")
    save_checkpoint(ckpt.with_name("step-9999999.pt"), state)  # training went on after `pathgan encode`
    with pytest.raises(StoreError, match=r"another generator checkpoint.*pathgan encode"):
        export_synthetic(copy, ExportConfig(n=1, classes=("tumor",)), out=tmp_path / "o", stores=stores,
                         progress=False)
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    cfg["stores"] = [str(tmp_path / "moved.zarr")]
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"not found.*--stores"):
        export_synthetic(copy, ExportConfig(n=1, classes=("tumor",)), out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
