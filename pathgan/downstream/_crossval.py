"""Cross-validation grouped by slide: no slide is ever in training and test at once (patches of one
slide are far more alike than patches of two)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pathgan.downstream._classifier import (
    ModelKind,
    _fit_arrays,
    json_safe,
)
from pathgan.downstream._metrics import classification_metrics
from pathgan.downstream._table import LatentTable
from pathgan.errors import ConfigError, ShapeError

__all__ = ["CVResult", "cross_validate"]


@dataclass
class CVResult:
    """Cross-validation grouped by slide: out-of-fold predictions and metrics.

    Attributes
    ----------
    classes, model, n_folds : as used.
    fold : int64 ``[N]``, the test fold of each table row (each slide's rows share one fold).
    oof_proba : float64 ``[N, n_classes]``, out-of-fold class probabilities of each row; a class
        absent from a fold's training rows gets probability 0 there.
    folds : per-fold ``{"fold", "test_slides", "n_train", **patch metrics}``.
    pooled : patch-level metrics over every out-of-fold prediction.
    slide_ids : str ``[S]``; ``slide_fold`` int64 ``[S]``; ``slide_labels`` str ``[S]`` or None
        (tile labels that differ within a slide give slides no single label).
    slide_proba : float64 ``[S, n_classes]``, mean of the slide's out-of-fold patch probabilities.
    slide : slide-level metrics of ``slide_proba`` (None without slide labels).
    mil_proba, mil : the attention-MIL head's out-of-fold slide probabilities and metrics (None
        when it was not run).
    notes : what could not be computed, and why.
    """

    classes: list[str]
    model: ModelKind
    n_folds: int
    fold: np.ndarray
    oof_proba: np.ndarray
    folds: list[dict[str, Any]]
    pooled: dict[str, Any]
    slide_ids: np.ndarray
    slide_fold: np.ndarray
    slide_labels: np.ndarray | None
    slide_proba: np.ndarray
    slide: dict[str, Any] | None
    mil_proba: np.ndarray | None
    mil: dict[str, Any] | None
    notes: list[str]

    def summary(self) -> dict[str, Any]:
        """JSON-safe metrics (no per-row arrays)."""
        return json_safe({
            "classes": self.classes, "model": self.model, "n_folds": self.n_folds,
            "folds": self.folds, "pooled": self.pooled,
            "slide_fold": dict(zip(self.slide_ids.tolist(), self.slide_fold.tolist(), strict=True)),
            "slide_mean_proba": self.slide, "slide_attention_mil": self.mil, "notes": self.notes,
        })


def _assign_folds(table: LatentTable, n_folds: int, seed: int) -> tuple[np.ndarray, int]:
    """Test fold of each row (whole slides per fold), and the number of folds actually used."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = np.full(len(table), -1, np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    k = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        for _, test in splitter.split(table.latents, table.y, groups=table.slide_ids):
            if len(test):
                folds[test] = k
                k += 1
    return folds, k


def cross_validate(table: LatentTable, model: ModelKind = "logreg", n_folds: int = 5, seed: int = 0, *,
                   mil: bool = True, mil_epochs: int = 100) -> CVResult:
    """Cross-validate a patch classifier with folds of whole slides, plus slide-level aggregation.

    Folds come from ``StratifiedGroupKFold`` (groups = slides, classes balanced across folds as
    far as whole slides allow); with fewer slides than ``n_folds`` every slide is its own fold.
    Each fold's model is fitted as :func:`fit_classifier` fits, on the other folds' patches only.
    When every slide has one label (manifest labels), slides are also scored by the mean of their
    patches' out-of-fold probabilities and, with ``mil``, by a gated-attention MIL head trained on
    the training folds' slides (:func:`pathgan.downstream._mil.fit_attention_mil`).

    Raises
    ------
    ConfigError
        Fewer than two classes or two slides, ``n_folds < 2``, a class carried by a single slide
        under slide-level labels (the fold holding that slide trains without it), or a fold
        whose training rows hold fewer than two classes.
    """
    if n_folds < 2:
        raise ConfigError(f"n_folds={n_folds} is not allowed; cross-validation needs at least 2 folds")
    classes, n_classes = table.classes, len(table.classes)
    if n_classes < 2:
        raise ConfigError(f"classification needs at least two classes; the labels hold {classes}")
    slides = table.slides
    if len(slides) < 2:
        raise ConfigError(f"cross-validation by slide needs at least two slides; the table holds {slides} "
                          "(patches of one slide cannot be split into independent folds)")
    slide_labels = table.slide_labels()
    if slide_labels is not None:
        per_class = {c: [s for s in slides if slide_labels[s] == c] for c in classes}
        lonely = {c: s for c, s in per_class.items() if len(s) < 2}
        if lonely:
            raise ConfigError(
                f"with slide-level labels every class needs at least two slides, or the fold holding a "
                f"class's only slide trains without that class; classes with one slide: {lonely}"
            )
    notes: list[str] = []
    used = min(n_folds, len(slides))
    if used < n_folds:
        notes.append(f"{len(slides)} slides: {used} folds instead of {n_folds} (one slide per fold)")
    fold, used = _assign_folds(table, used, seed)
    y = table.y
    oof = np.zeros((len(table), n_classes))
    fold_rows: list[dict[str, Any]] = []
    for k in range(used):
        test = fold == k
        train_classes = np.unique(y[~test])
        if len(train_classes) < 2:
            raise ConfigError(
                f"fold {k}: its training slides {sorted(set(table.slide_ids[~test].tolist()))} carry only class "
                f"{[classes[i] for i in train_classes]}; every training fold needs two classes (more slides "
                "per class, or fewer folds)"
            )
        if len(train_classes) < n_classes:
            notes.append(f"fold {k}: classes {[classes[i] for i in set(range(n_classes)) - set(train_classes)]} "
                         "absent from its training slides; they get probability 0 there")
        remap = np.full(n_classes, -1, np.int64)
        remap[train_classes] = np.arange(len(train_classes))
        sub = _fit_arrays(table.latents[~test], remap[y[~test]], [classes[i] for i in train_classes], model, seed,
                          table.run_id)
        oof[np.ix_(test, train_classes)] = sub.predict_proba(table.latents[test])
        m = classification_metrics(y[test], oof[test], n_classes)
        if m["note"]:
            notes.append(f"fold {k}: {m['note']}")
        fold_rows.append({"fold": k, "test_slides": sorted(set(table.slide_ids[test].tolist())),
                          "n_train": int((~test).sum()), **m})
    pooled = classification_metrics(y, oof, n_classes)
    if pooled["note"]:
        notes.append(f"pooled: {pooled['note']}")

    sid, inverse = np.unique(table.slide_ids, return_inverse=True)  # sid == slides (sorted)
    slide_fold = np.zeros(len(sid), np.int64)
    slide_fold[inverse] = fold
    counts = np.bincount(inverse, minlength=len(sid)).astype(np.float64)
    slide_proba = np.stack([np.bincount(inverse, weights=oof[:, c], minlength=len(sid)) for c in range(n_classes)],
                           axis=1) / counts[:, None]
    slide_metrics = mil_metrics = None
    mil_proba = None
    labels_arr = None
    if slide_labels is None:
        notes.append("tile labels differ within slides: slide-level metrics need one label per slide; skipped")
    else:
        labels_arr = np.asarray([slide_labels[s] for s in slides])
        y_slide = np.searchsorted(np.asarray(classes), labels_arr)
        slide_metrics = classification_metrics(y_slide, slide_proba, n_classes)
        if mil:
            mil_proba = _cv_mil(table, sid, slide_fold, y_slide, n_classes, used, seed, mil_epochs)
            mil_metrics = classification_metrics(y_slide, mil_proba, n_classes)
            if len(slides) < 10:
                notes.append(f"attention MIL trained on {len(slides) - 1} or fewer slides per fold: "
                             "too few bags for a reliable slide-level model")
    return CVResult(classes=classes, model=model, n_folds=used, fold=fold, oof_proba=oof, folds=fold_rows,
                    pooled=pooled, slide_ids=sid, slide_fold=slide_fold, slide_labels=labels_arr,
                    slide_proba=slide_proba, slide=slide_metrics, mil_proba=mil_proba, mil=mil_metrics, notes=notes)


def _cv_mil(table: LatentTable, slides: np.ndarray, slide_fold: np.ndarray, y_slide: np.ndarray, n_classes: int,
            n_folds: int, seed: int, epochs: int) -> np.ndarray:
    """Out-of-fold slide probabilities ``[S, n_classes]`` of the attention-MIL head."""
    from pathgan.downstream._mil import fit_attention_mil

    ids, inverse = np.unique(table.slide_ids, return_inverse=True)
    if ids.tolist() != slides.tolist():
        raise ShapeError("slides must be the table's sorted unique slide ids")
    order = np.argsort(inverse, kind="stable")
    bags = np.split(table.latents[order], np.cumsum(np.bincount(inverse))[:-1])
    out = np.zeros((len(slides), n_classes))
    for k in range(n_folds):
        test = slide_fold == k
        head = fit_attention_mil([b for b, t in zip(bags, test, strict=True) if not t], y_slide[~test], n_classes,
                                 epochs=epochs, seed=seed + k)
        out[test] = head.predict_proba([b for b, t in zip(bags, test, strict=True) if t])
    return out
