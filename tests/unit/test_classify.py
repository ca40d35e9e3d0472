"""pathgan classify on synthetic latents: folds by slide, metrics against sklearn, save/load, tile-label
CSV validation, the attention-MIL head on bags with a known answer, and the stage and CLI on tiny stores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from _tiny import make_tiny_store
from click.testing import CliRunner
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pathgan.cli import main
from pathgan.downstream import (
    LatentTable,
    classification_metrics,
    confusion_figure,
    cross_validate,
    fit_attention_mil,
    fit_classifier,
    load_classifier,
)
from pathgan.downstream._classifier import LOGREG_C, MLP_ALPHA, MLP_HIDDEN
from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.stages.classify import OUTPUT_FILES, classify
from pathgan.store import PatchStore, open_latents_for_write

RUN = "00001-test-run"
D = 8


def _linear_table(n_slides: int = 10, per_slide: int = 80, *, n_classes: int = 2, noise: float = 0.3,
                  seed: int = 0) -> LatentTable:
    """Tile labels that are a known linear function of the latent plus noise: argmax(x @ B + e)."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((D, n_classes))
    x = rng.standard_normal((n_slides * per_slide, D)).astype(np.float32)
    x += np.repeat(0.3 * rng.standard_normal((n_slides, D)), per_slide, axis=0).astype(np.float32)  # slide effects
    y = (x @ b + noise * rng.standard_normal((len(x), n_classes))).argmax(1)
    names = np.asarray([f"class{c}" for c in range(n_classes)])
    return LatentTable.from_arrays(x, names[y], np.repeat([f"s{i:02d}" for i in range(n_slides)], per_slide))


def _slide_label_table(n_per_class: int = 6, per_slide: int = 40, *, shift: float = 1.0, seed: int = 0) -> LatentTable:
    """Slide-level labels: every patch of a 'tumour' slide is shifted along the first latent axis."""
    rng = np.random.default_rng(seed)
    xs, labels, sids = [], [], []
    for i in range(2 * n_per_class):
        label = "tumour" if i % 2 else "normal"
        x = rng.standard_normal((per_slide, D)).astype(np.float32)
        x[:, 0] += shift if label == "tumour" else 0.0
        xs.append(x)
        labels += [label] * per_slide
        sids += [f"slide{i:02d}"] * per_slide
    return LatentTable.from_arrays(np.concatenate(xs), labels, sids)


# -------------------------------------------------------------------------------- folds
def test_no_slide_is_in_two_folds() -> None:
    table = _linear_table(n_slides=11)
    cv = cross_validate(table, n_folds=5, seed=3)
    assert cv.n_folds == 5
    for s in table.slides:
        assert len(set(cv.fold[table.slide_ids == s].tolist())) == 1, s
    assert sorted(set(cv.fold.tolist())) == [0, 1, 2, 3, 4]
    assert dict(zip(cv.slide_ids.tolist(), cv.slide_fold.tolist(), strict=True)) == {
        s: int(cv.fold[table.slide_ids == s][0]) for s in table.slides}
    for f in cv.folds:  # the slides a fold tests on are exactly those assigned to it, and no others
        assert f["test_slides"] == sorted(s for s in table.slides if cv.fold[table.slide_ids == s][0] == f["fold"])
        assert f["n_train"] + f["n"] == len(table)


def test_fewer_slides_than_folds_gives_one_slide_per_fold_and_one_slide_is_refused() -> None:
    cv = cross_validate(_linear_table(n_slides=3), n_folds=5)
    assert cv.n_folds == 3 and sorted(set(cv.fold.tolist())) == [0, 1, 2]
    assert any("3 folds instead of 5" in n for n in cv.notes)
    with pytest.raises(ConfigError, match="at least two slides"):
        cross_validate(_linear_table(n_slides=1), n_folds=5)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        cross_validate(_linear_table(), n_folds=1)


def test_slide_labels_need_two_slides_per_class() -> None:
    two = _slide_label_table(n_per_class=1)
    with pytest.raises(ConfigError, match="at least two slides"):
        cross_validate(two)


# ------------------------------------------------------------------------------ metrics
@pytest.mark.parametrize("n_classes", [2, 3])
def test_metrics_equal_sklearn_on_the_out_of_fold_predictions(n_classes: int) -> None:
    table = _linear_table(n_classes=n_classes, noise=1.0)
    cv = cross_validate(table, n_folds=4, seed=1, mil=False)
    y, p = table.y, cv.oof_proba
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    auc = roc_auc_score(y, p[:, 1]) if n_classes == 2 else roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert cv.pooled["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)), abs=1e-12)
    assert cv.pooled["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)), abs=1e-12)
    assert cv.pooled["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert cv.pooled["confusion"] == confusion_matrix(y, p.argmax(1)).tolist()
    for f in cv.folds:
        m = cv.fold == f["fold"]
        assert f["n"] == m.sum()
        assert f["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y[m], p[m].argmax(1)), abs=1e-12)
    # the out-of-fold predictions really are out of fold: refitting fold 0 by hand reproduces them
    m = cv.fold == 0
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=LOGREG_C, max_iter=5000, class_weight="balanced"))
    ref.fit(table.latents[~m].astype(np.float64), y[~m])
    np.testing.assert_allclose(p[m], ref.predict_proba(table.latents[m].astype(np.float64)), atol=1e-6)


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_separable_labels_are_learned_and_shuffled_labels_are_not(model: str) -> None:
    table = _linear_table(noise=0.05, seed=2)
    cv = cross_validate(table, model=model, n_folds=5)  # type: ignore[arg-type]
    assert cv.pooled["balanced_accuracy"] > 0.9, cv.pooled
    assert cv.pooled["roc_auc"] > 0.95, cv.pooled
    shuffled = LatentTable.from_arrays(table.latents, np.random.default_rng(0).permutation(table.labels),
                                       table.slide_ids)
    cv0 = cross_validate(shuffled, model=model, n_folds=5)  # type: ignore[arg-type]
    # 800 patches: a chance classifier's balanced accuracy has a standard deviation of ~0.02
    assert abs(cv0.pooled["balanced_accuracy"] - 0.5) < 0.08, cv0.pooled
    assert abs(cv0.pooled["roc_auc"] - 0.5) < 0.08, cv0.pooled


def test_roc_auc_is_nan_with_a_reason_when_a_fold_holds_one_class() -> None:
    base = _linear_table(n_slides=4, per_slide=30)
    labels = base.labels.copy()
    labels[base.slide_ids == "s00"] = "class0"  # slide s00 is all one class; with 4 folds it is a fold of its own
    cv = cross_validate(LatentTable.from_arrays(base.latents, labels, base.slide_ids), n_folds=4)
    fold = int(cv.fold[base.slide_ids == "s00"][0])
    assert np.isnan(cv.folds[fold]["roc_auc"])
    assert any(n.startswith(f"fold {fold}: ROC-AUC undefined") for n in cv.notes), cv.notes
    assert np.isfinite(cv.pooled["roc_auc"])


def test_classification_metrics_edge_cases() -> None:
    m = classification_metrics(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]]), 2)
    assert m["accuracy"] == pytest.approx(2 / 3) and m["confusion"] == [[1, 1], [0, 1]] and m["roc_auc"] == 1.0
    m = classification_metrics(np.array([0, 1]), np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1]]), 3)
    assert np.isnan(m["roc_auc"]) and "every class" in m["note"]
    with pytest.raises(ShapeError):
        classification_metrics(np.array([0, 1]), np.zeros((2, 3)), 2)


# -------------------------------------------------------------------- slide level and MIL
def test_slide_level_mean_probability_and_mil_on_slide_labels() -> None:
    table = _slide_label_table(n_per_class=6, shift=1.5)
    cv = cross_validate(table, n_folds=4, mil_epochs=40)
    assert cv.slide_labels is not None and cv.slide is not None and cv.mil is not None
    for i, s in enumerate(cv.slide_ids):
        np.testing.assert_allclose(cv.slide_proba[i], cv.oof_proba[table.slide_ids == s].mean(0))
    ys = np.searchsorted(cv.classes, cv.slide_labels)
    assert cv.slide["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(ys, cv.slide_proba.argmax(1)))
    assert cv.slide["balanced_accuracy"] >= 0.9, cv.slide
    assert cv.mil_proba is not None and cv.mil_proba.shape == (12, 2)
    np.testing.assert_allclose(cv.mil_proba.sum(1), 1.0, atol=1e-6)
    assert cv.mil["n"] == 12


def test_tile_labels_that_differ_within_slides_skip_slide_metrics() -> None:
    cv = cross_validate(_linear_table())
    assert cv.slide is None and cv.mil is None and cv.slide_labels is None
    assert any("tile labels differ within slides" in n for n in cv.notes)


def _bags(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Bags of 8-24 instances; a positive bag holds 1-3 positive instances (shifted by 3 along axis 0)."""
    rng = np.random.default_rng(seed)
    bags, labels, positive = [], [], []
    for _ in range(n):
        k = int(rng.integers(8, 25))
        x = rng.standard_normal((k, D)).astype(np.float32)
        pos = np.zeros(k, bool)
        label = int(rng.random() < 0.5)
        if label:
            idx = rng.choice(k, int(rng.integers(1, 4)), replace=False)
            x[idx, 0] += 3.0
            pos[idx] = True
        bags.append(x)
        labels.append(label)
        positive.append(pos)
    return bags, np.asarray(labels), positive


@pytest.mark.slow  # trains an attention-MIL network (~20 s)
def test_attention_mil_learns_at_least_one_positive_and_attends_to_it() -> None:
    """Bag label = "contains at least one positive instance": a mean of 8-24 instances dilutes the
    one to three positives (mean pooling + logistic regression measured 0.68 on these bags); the
    attention head measured 0.90 and put ~150x more weight on a positive instance than a negative."""
    train, y_train, _ = _bags(200, seed=0)
    test, y_test, pos_test = _bags(100, seed=1)
    head = fit_attention_mil(train, y_train, 2, epochs=40, seed=0)
    acc = float((head.predict_proba(test).argmax(1) == y_test).mean())
    assert acc > 0.8, acc
    pooled = LogisticRegression().fit(np.stack([b.mean(0) for b in train]), y_train)
    acc_mean = float((pooled.predict(np.stack([b.mean(0) for b in test])) == y_test).mean())
    assert acc > acc_mean + 0.1, (acc, acc_mean)
    ratios = []
    for bag, label, pos in zip(test, y_test, pos_test, strict=True):
        a = head.attention(bag)
        assert a.shape == (len(bag),) and a.sum() == pytest.approx(1.0, abs=1e-6) and (a >= 0).all()
        if label:
            ratios.append(a[pos].mean() / a[~pos].mean())
    assert np.median(ratios) > 5, np.median(ratios)
    again = fit_attention_mil(train, y_train, 2, epochs=40, seed=0)
    np.testing.assert_array_equal(again.predict_proba(test[:5]), head.predict_proba(test[:5]))


def test_attention_mil_rejects_bad_bags() -> None:
    with pytest.raises(ConfigError, match=">= 2 bags"):
        fit_attention_mil([np.zeros((3, D))], [0], 2)
    with pytest.raises(ConfigError, match="labels must lie"):
        fit_attention_mil([np.zeros((3, D)), np.ones((2, D))], [0, 2], 2)
    with pytest.raises(ConfigError, match="one width"):
        fit_attention_mil([np.zeros((3, D)), np.ones((2, D + 1))], [0, 1], 2)


# ------------------------------------------------------------------- classifier save / load
@pytest.mark.parametrize("model", ["logreg", "mlp"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_save_load_round_trip_predicts_identically(tmp_path: Path, model: str, n_classes: int) -> None:
    table = _linear_table(n_classes=n_classes, noise=0.5)
    clf = fit_classifier(table, model=model, seed=4)  # type: ignore[arg-type]
    x = np.random.default_rng(9).standard_normal((50, D)).astype(np.float32)
    npz = clf.save(tmp_path / "out" / "classifier.npz")
    assert npz == tmp_path / "out" / "classifier.npz" and (tmp_path / "out" / "classifier.json").is_file()
    assert not list((tmp_path / "out").glob("*.partial"))
    for where in (npz, tmp_path / "out" / "classifier.json", tmp_path / "out"):
        back = load_classifier(where)
        assert back.classes == clf.classes == table.classes and back.run_id == clf.run_id and back.kind == model
        np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    # the plain-array forward pass is sklearn's model
    if model == "logreg":
        ref = make_pipeline(StandardScaler(), LogisticRegression(C=LOGREG_C, max_iter=5000, class_weight="balanced"))
    else:
        ref = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, alpha=MLP_ALPHA,
                                                            early_stopping=True, validation_fraction=0.1,
                                                            n_iter_no_change=10, max_iter=300, random_state=4))
    ref.fit(table.latents.astype(np.float64), table.y)
    np.testing.assert_allclose(clf.predict_proba(x), ref.predict_proba(x.astype(np.float64)), atol=1e-9)
    with np.load(npz, allow_pickle=False) as data:  # nothing pickled
        assert all(data[k].dtype == np.float64 for k in data.files)


def test_load_refuses_tampered_or_missing_files(tmp_path: Path) -> None:
    npz = fit_classifier(_linear_table()).save(tmp_path / "c")
    assert npz.name == "c.npz"
    with pytest.raises(ShapeError, match=r"\[N, 8\]"):
        load_classifier(npz).predict_proba(np.zeros((2, 3)))
    np.savez(npz, x_mean=np.zeros(D))
    with pytest.raises(StoreError, match="SHA-256"):
        load_classifier(npz)
    with pytest.raises(StoreError, match="does not exist"):
        load_classifier(tmp_path / "nothing.npz")


def test_confusion_figure() -> None:
    fig = confusion_figure([[3, 1], [0, 4]], ["a", "b"], title="t")
    assert isinstance(fig, Figure)
    with pytest.raises(ShapeError):
        confusion_figure([[1, 2, 3]], ["a", "b"])


# ------------------------------------------------------------------- stores, CSV, stage, CLI
def _latent_store(root: Path, slide: str, w: np.ndarray, *, seed: int, label: str | None = None,
                  split: str | None = None, checkpoint: str = "x") -> Path:
    path = make_tiny_store(root / f"{slide}.zarr", len(w), seed=seed, split=split)
    if label is not None:  # the manifest's label, as `pathgan tile` stores it in the group attributes
        grp = zarr.open_group(path, mode="r+")
        grp.attrs["pathgan"] = {**dict(grp.attrs["pathgan"]), "label": label}
    writer = open_latents_for_write(path, RUN, w_dim=w.shape[1], attrs={"checkpoint_sha256": checkpoint,
                                                                        "encoder_sha256": "y"})
    writer.write(0, w.astype(np.float32))
    writer.finish()
    return path


def _slide_stores(root: Path, *, n_slides: int = 6, n: int = 30, test_slide: bool = False) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_slides):
        label = "tumour" if i % 2 else "normal"
        w = rng.standard_normal((n, D))
        w[:, 0] += 2.0 if label == "tumour" else 0.0
        split = "test" if test_slide and i >= n_slides - 2 else None
        paths.append(_latent_store(root, f"slide{i}", w, seed=i, label=label, split=split))
    return paths


def _write_csv(path: Path, rows: list[list[object]], header: tuple[str, ...] = ("slide_id", "x", "y", "label")) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_table_from_stores_with_manifest_labels(tmp_path: Path) -> None:
    paths = _slide_stores(tmp_path, n_slides=4)
    table = LatentTable.from_stores(paths, RUN)
    assert len(table) == 120 and table.slides == ["slide0", "slide1", "slide2", "slide3"]
    assert table.classes == ["normal", "tumour"] and table.slide_labels() == {
        "slide0": "normal", "slide1": "tumour", "slide2": "normal", "slide3": "tumour"}
    store = PatchStore(paths[1])
    m = table.store_index == 1
    np.testing.assert_array_equal(table.latents[m], store.latents(RUN))
    np.testing.assert_array_equal(table.coords[m], store.coords)
    assert table.latent_provenance["checkpoint_sha256"] == "x" and table.latent_provenance["encoder_sha256"] == "y"


def test_tile_label_csv_selects_and_labels_patches(tmp_path: Path) -> None:
    paths = _slide_stores(tmp_path, n_slides=2)
    c0, c1 = PatchStore(paths[0]).coords, PatchStore(paths[1]).coords
    csv_path = _write_csv(tmp_path / "tiles.csv", [["slide1", *c1[5], "b"], ["slide0", *c0[2], "a"],
                                                   ["slide0", *c0[7], "b"]])
    table = LatentTable.from_stores(paths, RUN, labels_csv=csv_path)
    assert table.slide_ids.tolist() == ["slide0", "slide0", "slide1"]
    assert table.rows.tolist() == [2, 7, 5] and table.labels.tolist() == ["a", "b", "b"]
    np.testing.assert_array_equal(table.latents[2], PatchStore(paths[1]).latents(RUN)[5])
    assert table.label_source["kind"] == "tile_csv" and len(table.label_source["sha256"]) == 64


def test_tile_label_csv_errors_name_the_row_and_value(tmp_path: Path) -> None:
    paths = _slide_stores(tmp_path, n_slides=2)
    c0 = PatchStore(paths[0]).coords
    bad = _write_csv(tmp_path / "bad.csv", [
        ["slide0", *c0[0], "a"],        # row 2: fine
        ["nosuch", *c0[0], "a"],        # row 3: unknown slide
        ["slide0", 99999, 5, "a"],      # row 4: coordinates of no patch
        ["slide0", *c0[0], "b"],        # row 5: duplicate of row 2
        ["slide0", "1.5", 2, "a"],      # row 6: not an integer
        ["slide0", *c0[1], ""],         # row 7: empty label
    ])
    with pytest.raises(ConfigError) as err:
        LatentTable.from_stores(paths, RUN, labels_csv=bad)
    msg = str(err.value)
    assert "5 problem(s)" in msg
    assert "line 3: slide_id 'nosuch'" in msg
    assert "line 4: no patch of slide 'slide0'" in msg and "(99999, 5)" in msg
    assert "line 5: tile" in msg and "first in line 2" in msg
    assert "line 6: x='1.5'" in msg
    assert "line 7: label is empty" in msg
    missing = _write_csv(tmp_path / "missing.csv", [["slide0", 1, "a"]], header=("slide_id", "x", "label"))
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['y'\]"):
        LatentTable.from_stores(paths, RUN, labels_csv=missing)


def test_stores_without_labels_or_with_mixed_generators_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = _latent_store(tmp_path, "a", rng.standard_normal((10, D)), seed=1, label="x")
    b = _latent_store(tmp_path, "b", rng.standard_normal((10, D)), seed=2)
    with pytest.raises(ConfigError, match="carry no slide label"):
        LatentTable.from_stores([a, b], RUN)
    c = _latent_store(tmp_path, "c", rng.standard_normal((10, D)), seed=3, label="y", checkpoint="other")
    with pytest.raises(ConfigError, match="another generator/encoder"):
        LatentTable.from_stores([a, c], RUN)
    with pytest.raises(StoreError, match="no latents for run"):
        LatentTable.from_stores([a], "99999-other")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_stage_writes_every_output_and_its_metrics_match_the_saved_predictions(tmp_path: Path) -> None:
    paths = _slide_stores(tmp_path / "stores", n_slides=8, test_slide=True)
    out = tmp_path / "cls"
    res = classify([tmp_path / "stores"], RUN, n_folds=3, out_dir=out, seed=0)
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name not in OUTPUT_FILES]
    assert res["n_slides"] == 6 and res["n_patches"] == 180  # the two split=test slides are held out

    metrics = json.loads((out / "metrics.json").read_text())
    rows = [r for r in _read_csv(out / "patch_predictions.csv") if r["fold"] != "test"]
    classes = metrics["classes"]
    y = np.searchsorted(classes, [r["label"] for r in rows])
    p = np.asarray([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    pooled = metrics["cv"]["pooled"]
    assert pooled["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)), abs=1e-12)
    assert pooled["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]), abs=1e-12)
    assert pooled["confusion"] == confusion_matrix(y, p.argmax(1)).tolist()
    by_slide: dict[str, set[str]] = {}
    for r in rows:
        by_slide.setdefault(r["slide_id"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in by_slide.values()) and set(by_slide) == {f"slide{i}" for i in range(6)}

    slides = {r["slide_id"]: r for r in _read_csv(out / "slide_predictions.csv")}
    assert {s for s, r in slides.items() if r["fold"] == "test"} == {"slide6", "slide7"}
    sp = np.asarray([[float(slides[s][f"p_{c}"]) for c in classes] for s in sorted(by_slide)])
    ys = np.searchsorted(classes, [slides[s]["label"] for s in sorted(by_slide)])
    assert metrics["cv"]["slide_mean_proba"]["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(ys, sp.argmax(1)))
    assert metrics["cv"]["slide_attention_mil"]["n"] == 6
    assert metrics["test"]["slides"] == ["slide6", "slide7"] and metrics["test"]["patch"]["n"] == 60

    clf = load_classifier(out / "classifier.npz")
    meta = json.loads((out / "classifier.json").read_text())
    assert clf.run_id == RUN and clf.classes == ["normal", "tumour"]
    assert meta["provenance"]["latents"]["checkpoint_sha256"] == "x"
    assert meta["provenance"]["latents"]["encoder_sha256"] == "y"
    assert meta["provenance"]["slide_ids"] == [f"slide{i}" for i in range(6)]
    assert meta["provenance"]["stores"] == [str(p.resolve()) for p in paths[:6]]
    assert meta["metrics"]["cv_pooled"] == pooled
    test_rows = [r for r in _read_csv(out / "patch_predictions.csv") if r["slide_id"] == "slide7"]
    np.testing.assert_array_equal(
        clf.predict_proba(PatchStore(paths[7]).latents(RUN)),
        np.asarray([[float(r[f"p_{c}"]) for c in classes] for r in test_rows]))


def test_cli_classify_prints_the_table_and_maps_errors(tmp_path: Path) -> None:
    _slide_stores(tmp_path / "stores", n_slides=4)
    runner = CliRunner()
    res = runner.invoke(main, ["classify", "--help"])
    assert res.exit_code == 0 and "pathgan classify --run" in res.output and "--labels" in res.output
    assert "--run-id" not in res.output  # the deprecated spelling works but is not advertised
    res = runner.invoke(main, ["classify", "--run", RUN, "--folds", "2", "--no-mil", "--out",
                               str(tmp_path / "out"), "--stores", str(tmp_path / "stores")])
    assert res.exit_code == 0, res.output
    assert "pooled out-of-fold" in res.output and "mean patch probability" in res.output
    assert "attention MIL" not in res.output
    assert (tmp_path / "out" / "classifier.json").is_file()
    # the old spellings (--run-id, positional STORES) still work, each with one deprecation line
    old = runner.invoke(main, ["classify", "--run-id", RUN, "--folds", "2", "--no-mil", "--out",
                               str(tmp_path / "old"), str(tmp_path / "stores")])
    assert old.exit_code == 0, old.output
    assert old.stderr.splitlines()[:2] == [
        "pathgan: --run-id is deprecated; use --run RUN (removed in 0.3)",
        "pathgan: positional STORES is deprecated; use --stores STORES (removed in 0.3)"]
    assert (tmp_path / "old" / "metrics.json").read_text() == (tmp_path / "out" / "metrics.json").read_text()
    res = runner.invoke(main, ["classify", "--run", RUN, "--run-id", RUN, "--stores", str(tmp_path / "stores")])
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(main, ["classify", "--run", RUN])  # a bare id: its stores are unknown here
    assert res.exit_code == 2 and "give --stores PATH" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(main, ["classify", "--run", RUN, "--stores", str(tmp_path / "empty")])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        f"Error: --stores {tmp_path / 'empty'}: no <slide_id>.zarr stores in this folder (run pathgan tile first)"]
    res = runner.invoke(main, ["classify", "--run", "99999-nothing", "--out", str(tmp_path / "o2"),
                               "--stores", str(tmp_path / "stores")])
    assert res.exit_code == 1 and "no latents for run" in res.output and "Traceback" not in res.output
