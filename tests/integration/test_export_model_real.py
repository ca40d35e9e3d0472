"""export-model on the small trained model of the real slides (tests/integration/conftest.py): what
goes through an exported folder equals what goes through the run (images, latents, synthetic
patches, evaluation), the card states the run's own numbers, and the float16 files are small."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathgan.downstream import ExportConfig
from pathgan.export import CONFIG_FILE, export_model, open_model
from pathgan.export._card import training_time
from pathgan.latents import LatentModel
from pathgan.stages.encode import encode_run
from pathgan.stages.evaluate import evaluate_run
from pathgan.stages.export_synthetic import export_synthetic
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVAL_N = 48


@pytest.fixture(scope="module")
def setup(real_latent_run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the shared run (so its eval JSON stays out of the shared one), evaluated, exported twice."""
    root = tmp_path_factory.mktemp("export_real")
    run = root / "runs" / real_latent_run.run_dir.name
    shutil.copytree(real_latent_run.run_dir, run)
    evaluate_run(run, real_latent_run.stores, n=EVAL_N, extractor="random", device="cpu")
    return {"run": run, "f32": export_model(run, root / "model-f32"),
            "f16": export_model(run, root / "model-f16", dtype="float16"), "root": root}


def _copy_stores(stores: list[Path], dst: Path) -> list[Path]:
    return [Path(shutil.copytree(s, dst / s.name)) for s in stores]


def test_images_and_encodings_through_the_export(setup: dict[str, Path], real_latent_run) -> None:
    run, f32, f16 = (LatentModel.load(setup[k], require_encoder=True) for k in ("run", "f32", "f16"))
    z = run.sample_z(32, seed=7)
    images = run.generate(z=z, truncation=0.8)
    np.testing.assert_array_equal(f32.generate(z=z, truncation=0.8), images)
    half = f16.generate(z=z, truncation=0.8).astype(int)
    diff = np.abs(half - images)
    assert diff.max() <= 8 and diff.mean() <= 0.5, (diff.max(), diff.mean())
    patches = PatchStore(real_latent_run.stores[0]).read(slice(0, 32))
    w = run.encode(patches)
    np.testing.assert_array_equal(f32.encode(patches), w)
    assert np.abs(f16.encode(patches) - w).max() <= 0.02 * float(w.std())


def test_encode_through_the_export_writes_the_runs_latents(setup: dict[str, Path], real_latent_run,
                                                           tmp_path: Path) -> None:
    stores = _copy_stores(real_latent_run.stores, tmp_path / "stores")
    run_id = real_latent_run.run_id
    # the float32 export is the same weights: the run's latents are already those of the export
    _, rows = encode_run(setup["f32"], stores, device="cpu", progress=False)
    assert [r.status for r in rows] == ["skipped", "skipped"]
    _, rows = encode_run(setup["f32"], stores, device="cpu", overwrite=True, progress=False)
    assert [r.status for r in rows] == ["encoded", "encoded"]
    for copy, original in zip(stores, real_latent_run.stores, strict=True):
        np.testing.assert_array_equal(PatchStore(copy).latents(run_id), PatchStore(original).latents(run_id))
    _, rows = encode_run(setup["f16"], stores, device="cpu", progress=False)
    assert [r.status for r in rows] == ["encoded", "encoded"]
    for copy in stores:
        ref, half = PatchStore(copy).latents(run_id), PatchStore(copy).latents(f"{run_id}-fp16")
        assert np.abs(half - ref).max() <= 0.02 * float(ref.std())


def test_export_synthetic_through_the_export_gives_the_runs_patches(setup: dict[str, Path], tmp_path: Path) -> None:
    cfg = ExportConfig(n=6, seed=2, truncation=0.7)
    a = export_synthetic(setup["run"], cfg, out=tmp_path / "a", device="cpu", progress=False)
    b = export_synthetic(setup["f32"], cfg, out=tmp_path / "b", device="cpu", progress=False)
    np.testing.assert_array_equal(np.load(b / "latents.npy"), np.load(a / "latents.npy"))
    rows_a, rows_b = (list(csv.DictReader((d / "synthetic.csv").open())) for d in (a, b))
    assert rows_a == rows_b
    for row in rows_a:
        np.testing.assert_array_equal(np.asarray(Image.open(b / row["file"])), np.asarray(Image.open(a / row["file"])))
    with pytest.raises(Exception, match="give the stores with --stores"):
        export_synthetic(setup["f32"], ExportConfig(n=1, classes=("x",)), out=tmp_path / "c", progress=False)


def test_evaluate_through_the_export_repeats_the_runs_numbers(setup: dict[str, Path], real_latent_run) -> None:
    (run_json,) = sorted(setup["run"].glob("eval-*.json"))
    ran = json.loads(run_json.read_text())
    res = evaluate_run(setup["f32"], real_latent_run.stores, n=EVAL_N, extractor="random", device="cpu")
    assert Path(res["path"]).parent == setup["f32"]
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "fid_floor", "fid_matched", "n_real", "n_fake",
                "real_split", "real_slides", "checkpoint"):
        assert res[key] == ran[key], key


def test_the_card_states_the_runs_numbers(setup: dict[str, Path], real_latent_run) -> None:
    from pathgan.runs import RunDir

    run = RunDir.open(setup["run"])
    card = (setup["f32"] / "MODEL_CARD.md").read_text()
    (ev_path,) = sorted(setup["run"].glob("eval-*.json"))
    ev = json.loads(ev_path.read_text())
    assert (f"| {ev_path.name} | {ev['extractor']} | {ev['real_split']}: {', '.join(ev['real_slides'])} "
            f"| {ev['n_real']} / {ev['n_fake']} | {1e3 * ev['kid_mean']:.2f} +- {1e3 * ev['kid_std']:.2f} "
            f"| {ev['fid']:.2f} | {ev['fid_matched']:.2f} / {ev['fid_floor']:.2f} ({ev['n_floor']}) "
            f"| {ev['precision']:.3f} / {ev['recall']:.3f} |") in card
    prov = run.provenance
    n_slides = len(prov["train_slides"])
    assert f"Trained on {n_slides} slide{'s' if n_slides != 1 else ''} (" in card
    assert f"Training patches: {prov['n_train_patches']} " in card and f"`{prov['data_fingerprint']}`" in card
    assert f"{prov['image_px']} px at {prov['patch_mpp']:g} um/px" in card
    t = training_time(run.stats_path)
    assert t is not None and f"Training time: {t['minutes']:.1f} min over {t['sessions']} session(s)" in card
    (session,) = run.config["sessions"]  # the fixture trained in one session, on this machine's CPU
    assert f"CPU: {session['cpu']}, {session['cpu_cores_usable']} usable core(s)" in card
    enc = json.loads((run.encoder_dir / "eval.json").read_text())
    assert f"Encoder: w R^2 {enc['w_r2']:.3f} on {enc['n_generated']} generated images" in card
    cfg = json.loads((setup["f32"] / CONFIG_FILE).read_text())
    assert cfg["evaluations"][0]["kid_mean"] == ev["kid_mean"] and cfg["provenance"] == prov


def test_float16_export_size(setup: dict[str, Path]) -> None:
    sizes = {p.name: p.stat().st_size for p in setup["f16"].iterdir()}
    full = {p.name: p.stat().st_size for p in setup["f32"].iterdir()}
    total = sum(sizes.values())
    print(f"\n{open_model(setup['f16']).model_cfg.name} float16 export: {sizes} = {total / 1e6:.2f} MB "
          f"(float32: {sum(full.values()) / 1e6:.2f} MB)")
    assert total < 10e6  # the budget for a model shipped in the repository
    assert sizes["generator.safetensors"] < 0.51 * full["generator.safetensors"]


def test_classify_takes_the_exported_folder_for_its_latents(setup: dict[str, Path], real_latent_run,
                                                             tmp_path: Path) -> None:
    from pathgan.stages.classify import classify

    labels = tmp_path / "halves.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["slide_id", "x", "y", "label"])
        for path in real_latent_run.stores:
            store = PatchStore(path)
            xs = store.coords[:, 0]
            for (x, y) in store.coords.tolist():
                writer.writerow([store.slide_id, x, y, "left" if x < np.median(xs) else "right"])
    res = classify(real_latent_run.stores, str(setup["f32"]), labels_csv=labels, out_dir=tmp_path / "cls",
                   n_folds=2, mil=False)
    metrics = json.loads((tmp_path / "cls" / "metrics.json").read_text())
    assert metrics["run_id"] == real_latent_run.run_id and res["n_patches"] > 0
