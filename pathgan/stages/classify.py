"""``pathgan classify``: latents of patch stores + labels -> cross-validated metrics and a saved classifier.

Slides whose manifest ``split`` is ``test`` are kept out of cross-validation and of the final fit;
the final classifier (fitted on every other slide) is scored on them once. Everything is written
into ``out_dir``, each file under a temporary name first and renamed when complete:

- ``classifier.npz`` + ``classifier.json``: the fitted classifier (arrays; classes, run id,
  provenance, metrics), loaded by :func:`pathgan.downstream.load_classifier`;
- ``metrics.json``: per-fold, pooled, slide-level (mean probability, attention MIL) and test metrics;
- ``confusion.png``: the pooled out-of-fold patch-level confusion matrix;
- ``patch_predictions.csv``: every patch's out-of-fold (or test) class probabilities;
- ``slide_predictions.csv``: every slide's mean probability and MIL prediction.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathgan import __version__
from pathgan._io import atomic_write_bytes
from pathgan.downstream import (
    CVResult,
    LatentClassifier,
    LatentTable,
    ModelKind,
    classification_metrics,
    confusion_figure,
    cross_validate,
    fit_classifier,
)
from pathgan.downstream._classifier import json_safe
from pathgan.errors import ConfigError
from pathgan.store import expand_stores

__all__ = ["OUTPUT_FILES", "classify"]

OUTPUT_FILES = ("classifier.npz", "classifier.json", "metrics.json", "confusion.png", "patch_predictions.csv",
                "slide_predictions.csv")


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _num(value: float) -> str:
    """Full precision (repr round-trips exactly), so metrics recomputed from the CSV match."""
    return repr(float(value))


def _test_metrics(clf: LatentClassifier, test: LatentTable, classes: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    """Patch- and slide-level metrics of the final classifier on held-out ``test`` slides."""
    proba = clf.predict_proba(test.latents)
    y = np.searchsorted(np.asarray(classes), test.labels)
    known = np.isin(test.labels, classes)
    out: dict[str, Any] = {"slides": test.slides}
    if not known.all():
        out["note"] = f"test labels {sorted(set(test.labels[~known].tolist()))} were never trained on; rows skipped"
    out["patch"] = classification_metrics(y[known], proba[known], len(classes))
    slide_labels = test.slide_labels()
    if slide_labels is not None and known.all():
        ys = np.searchsorted(np.asarray(classes), [slide_labels[s] for s in test.slides])
        ps = np.stack([proba[test.slide_ids == s].mean(0) for s in test.slides])
        out["slide_mean_proba"] = classification_metrics(ys, ps, len(classes))
    return out, proba


def _patch_rows(table: LatentTable, fold: list[str], proba: np.ndarray) -> list[list[Any]]:
    stores = [str(p) for p in table.store_paths]
    rows = []
    for i in range(len(table)):
        k = int(table.store_index[i])
        rows.append([stores[k] if k >= 0 else "", table.slide_ids[i], int(table.rows[i]), int(table.coords[i, 0]),
                     int(table.coords[i, 1]), table.splits[i], table.labels[i], fold[i],
                     *(_num(p) for p in proba[i])])
    return rows


def _slide_rows(cv: CVResult, test: LatentTable | None, test_proba: np.ndarray | None,
                cv_table: LatentTable) -> list[list[Any]]:
    classes = np.asarray(cv.classes)
    ids, counts = np.unique(cv_table.slide_ids, return_counts=True)
    n_patches = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    rows = []
    for i, s in enumerate(cv.slide_ids.tolist()):
        label = "" if cv.slide_labels is None else str(cv.slide_labels[i])
        mil = [""] * (1 + len(classes)) if cv.mil_proba is None else [
            classes[cv.mil_proba[i].argmax()], *(_num(p) for p in cv.mil_proba[i])]
        rows.append([s, str(int(cv.slide_fold[i])), n_patches[s], label,
                     classes[cv.slide_proba[i].argmax()], *(_num(p) for p in cv.slide_proba[i]), *mil])
    if test is not None and test_proba is not None:
        labels = test.slide_labels()
        for s in test.slides:
            p = test_proba[test.slide_ids == s].mean(0)
            rows.append([s, "test", int((test.slide_ids == s).sum()), "" if labels is None else labels[s],
                         classes[p.argmax()], *(_num(v) for v in p), *([""] * (1 + len(classes)))])
    return rows


def classify(
    stores: Sequence[str | Path],
    run_id: str,
    *,
    labels_csv: str | Path | None = None,
    model: ModelKind = "logreg",
    n_folds: int = 5,
    out_dir: str | Path,
    seed: int = 0,
    mil: bool = True,
) -> dict[str, Any]:
    """Cross-validate and fit a classifier on the latents of ``run_id``; write the results to ``out_dir``.

    Parameters
    ----------
    stores : patch stores (``<slide_id>.zarr``) or folders holding them, with complete
        ``latents/<run_id>`` (``pathgan encode``).
    run_id : the latents' name, or the run directory or exported model (its ``model_id``) that made them.
    labels_csv : tile-label CSV (``slide_id,x,y,label``, level-0 coords as in the stores); without
        it every patch gets its slide's manifest ``label``.
    model : ``"logreg"`` or ``"mlp"`` (see :func:`pathgan.downstream.fit_classifier`).
    n_folds : folds of whole slides (fewer when there are fewer slides).
    mil : also train the attention-MIL head per fold (slide-level labels only).

    Returns
    -------
    ``{"out_dir", "files", "classes", "model", "n_patches", "n_slides", "cv", "test", "seconds"}``
    with ``cv`` as in ``metrics.json``.

    Raises
    ------
    ConfigError, StoreError
        Bad stores or labels (see :meth:`LatentTable.from_stores`), or a problem cross-validation
        cannot handle (see :func:`pathgan.downstream.cross_validate`).
    """
    from pathgan.export import resolve_model_id

    t0 = time.perf_counter()
    out = Path(out_dir)
    run_id = resolve_model_id(run_id)  # a run directory or an exported model stands for its latents' name
    table = LatentTable.from_stores(expand_stores([Path(s) for s in stores]), run_id, labels_csv=labels_csv)
    is_test = table.splits == "test"
    cv_table = table.subset(~is_test)
    if not len(cv_table):
        raise ConfigError("every slide has split=test in the manifest; nothing is left to cross-validate and train on")
    cv = cross_validate(cv_table, model=model, n_folds=n_folds, seed=seed, mil=mil)
    clf = fit_classifier(cv_table, model=model, seed=seed)
    test = table.subset(is_test) if is_test.any() else None
    test_summary, test_proba = _test_metrics(clf, test, cv.classes) if test is not None else (None, None)

    summary = cv.summary()
    metrics = {
        "run_id": run_id, "model": model, "classes": cv.classes, "seed": seed,
        "n_patches": len(cv_table), "n_slides": len(cv_table.slides),
        "label_source": table.label_source, "cv": summary, "test": test_summary,
        "pathgan_version": __version__,
    }
    clf.metadata["metrics"] = {"cv_pooled": summary["pooled"], "cv_slide_mean_proba": summary["slide_mean_proba"],
                               "cv_slide_attention_mil": summary["slide_attention_mil"], "test": test_summary}
    out.mkdir(parents=True, exist_ok=True)
    class_cols = [f"p_{c}" for c in cv.classes]
    patch_rows = _patch_rows(cv_table, [str(int(f)) for f in cv.fold], cv.oof_proba)
    if test is not None and test_proba is not None:
        patch_rows += _patch_rows(test, ["test"] * len(test), test_proba)
    atomic_write_bytes(out / "patch_predictions.csv", _csv_bytes(
        ["store", "slide_id", "row", "x", "y", "split", "label", "fold", *class_cols], patch_rows))
    atomic_write_bytes(out / "slide_predictions.csv", _csv_bytes(
        ["slide_id", "fold", "n_patches", "label", "predicted", *class_cols, "mil_predicted",
         *(f"mil_{c}" for c in class_cols)], _slide_rows(cv, test, test_proba, cv_table)))
    fig = confusion_figure(cv.pooled["confusion"], cv.classes,
                           title=f"{model}, {cv.n_folds}-fold CV by slide, patch level (pooled out-of-fold)\n"
                                 f"balanced accuracy {cv.pooled['balanced_accuracy']:.3f}, ROC-AUC "
                                 f"{_fmt(cv.pooled['roc_auc'])}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out / "confusion.png", buf.getvalue())
    atomic_write_bytes(out / "metrics.json", (json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n").encode())
    clf.save(out / "classifier.npz")  # last: classifier.json marks a finished run
    return {"out_dir": out, "files": {name: out / name for name in OUTPUT_FILES}, "classes": cv.classes,
            "model": model, "n_patches": len(cv_table), "n_slides": len(cv_table.slides), "cv": summary,
            "test": json_safe(test_summary), "seconds": time.perf_counter() - t0}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
