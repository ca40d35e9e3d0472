"""Classification metrics: accuracy, balanced accuracy, ROC-AUC, confusion (scikit-learn's
definitions, checked against it in the tests)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from pathgan.errors import ShapeError

__all__ = ["classification_metrics"]


def _roc_auc(y: np.ndarray, proba: np.ndarray, n_classes: int) -> tuple[float, str | None]:
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return math.nan, "ROC-AUC undefined: only one class among the true labels"
    if n_classes == 2:
        return float(roc_auc_score(y, proba[:, 1])), None
    if len(present) < n_classes:
        return math.nan, "ROC-AUC undefined: one-vs-rest macro needs every class among the true labels"
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(n_classes))), None


def classification_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, ROC-AUC and the confusion matrix of predictions ``argmax(proba)``.

    Parameters
    ----------
    y : int ``[n]`` true class indices.
    proba : float ``[n, n_classes]`` class probabilities (rows sum to 1).

    Returns
    -------
    ``{"n", "accuracy", "balanced_accuracy", "roc_auc", "confusion", "note"}``: ``roc_auc`` is
    ``roc_auc_score`` for two classes and the one-vs-rest macro average for more; it is NaN, and
    ``note`` says why, when the true labels hold one class only (or, multi-class, miss a class).
    ``confusion[i][j]`` counts class ``i`` predicted as class ``j``. Balanced accuracy averages
    the recall of the classes present among the true labels.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    y = np.asarray(y, np.int64)
    proba = np.asarray(proba, np.float64)
    if proba.shape != (len(y), n_classes):
        raise ShapeError(f"proba must be [{len(y)}, {n_classes}]; received {list(proba.shape)}")
    if not len(y):
        return {"n": 0, "accuracy": math.nan, "balanced_accuracy": math.nan, "roc_auc": math.nan,
                "confusion": np.zeros((n_classes, n_classes), int).tolist(), "note": "no rows"}
    pred = proba.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is expected in small folds
        bacc = float(balanced_accuracy_score(y, pred))
    auc, note = _roc_auc(y, proba, n_classes)
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": bacc,
        "roc_auc": auc,
        "confusion": confusion_matrix(y, pred, labels=np.arange(n_classes)).tolist(),
        "note": note,
    }
