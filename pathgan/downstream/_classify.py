"""Classifiers on patch latents: a table of labelled latents, cross-validation grouped by slide,
a fitted classifier saved without pickle, and a confusion-matrix figure.

Labels come from the manifest (a store's slide-level ``label``: every patch of the slide gets it)
or from a tile-label CSV (``slide_id,x,y,label``, level-0 top-left corners equal to rows of a
store's ``coords``). Folds are built from whole slides, so no slide is ever in training and test
at once: patches of one slide are far more alike than patches of two, and a patch-level split
would measure how well the model recognises slides.

>>> table = LatentTable.from_stores(["out/tiles/a.zarr", "out/tiles/b.zarr"], "00003-run")  # doctest: +SKIP
>>> cv = cross_validate(table, model="logreg", n_folds=5)                                     # doctest: +SKIP
>>> clf = fit_classifier(table); clf.save("out/classify/classifier.npz")                     # doctest: +SKIP
>>> load_classifier("out/classify/classifier.npz").predict_proba(w)   # float64 [N, n_classes] # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from matplotlib.figure import Figure

from pathgan import __version__
from pathgan._io import atomic_write_bytes
from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.labels import read_label_csv

__all__ = [
    "CVResult",
    "LatentClassifier",
    "LatentTable",
    "ModelKind",
    "classification_metrics",
    "confusion_figure",
    "cross_validate",
    "fit_classifier",
    "load_classifier",
]

ModelKind = Literal["logreg", "mlp"]

#: Inverse regularisation strength of the logistic regression on standardised latents. Latents of
#: different slides differ in more than the label (stain, preparation); a firm L2 penalty keeps the
#: model from memorising those differences (the README's slide probe uses the same value).
LOGREG_C = 0.1
#: Hidden units of the MLP (one hidden layer, ReLU, L2 ``alpha``, early stopping on 10 % of the
#: training patches).
MLP_HIDDEN = (64,)
MLP_ALPHA = 1e-3
#: The ``.npz`` + ``.json`` layout written by :meth:`LatentClassifier.save`.
FORMAT_VERSION = 1
_MAX_LISTED = 20


# --------------------------------------------------------------------------------------- table
@dataclass(frozen=True, eq=False)
class LatentTable:
    """Labelled patch latents gathered from patch stores, one row per patch.

    Attributes
    ----------
    latents : float32 ``[N, w_dim]``.
    labels : str ``[N]``, the class of each patch.
    slide_ids : str ``[N]``, the slide each patch belongs to (the grouping of the folds).
    store_index : int64 ``[N]``, index into ``store_paths`` (-1 for tables built from arrays).
    rows : int64 ``[N]``, the patch's row in its store (as in ``coords`` and ``latents``).
    coords : int64 ``[N, 2]``, level-0 ``(x, y)`` of each patch's top-left corner.
    splits : str ``[N]``, the manifest split of the patch's slide (``train``/``val``/``test``, or
        ``""`` when none was given).
    store_paths : the stores the rows came from.
    run_id : the latents' run (``latents/<run_id>`` in every store).
    label_source : ``{"kind": "manifest"}``, ``{"kind": "tile_csv", "path", "sha256"}`` or
        ``{"kind": "arrays"}``.
    latent_provenance : the latents' generator and encoder SHA-256 and ``refine_steps``.
    """

    latents: np.ndarray
    labels: np.ndarray
    slide_ids: np.ndarray
    store_index: np.ndarray
    rows: np.ndarray
    coords: np.ndarray
    splits: np.ndarray
    store_paths: tuple[Path, ...] = ()
    run_id: str = ""
    label_source: dict[str, Any] = field(default_factory=lambda: {"kind": "arrays"})
    latent_provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.latents)
        if self.latents.ndim != 2:
            raise ShapeError(f"latents must be [N, w_dim]; received shape {list(self.latents.shape)}")
        for name in ("labels", "slide_ids", "store_index", "rows", "splits"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"{name} must have shape [{n}]; received {list(getattr(self, name).shape)}")
        if self.coords.shape != (n, 2):
            raise ShapeError(f"coords must have shape [{n}, 2]; received {list(self.coords.shape)}")
        if n and not np.all(np.isfinite(self.latents)):
            raise ShapeError("latents hold NaN or infinite values")

    @classmethod
    def from_arrays(cls, latents: Any, labels: Sequence[Any], slide_ids: Sequence[Any], *,
                    splits: Sequence[str] | None = None, run_id: str = "") -> LatentTable:
        """A table from in-memory arrays (notebooks, tests): rows numbered within each slide."""
        x = np.asarray(latents, np.float32)
        sid = np.asarray([str(s) for s in slide_ids])
        rows = np.zeros(len(sid), np.int64)
        for s in np.unique(sid):
            rows[sid == s] = np.arange(int((sid == s).sum()))
        return cls(latents=x, labels=np.asarray([str(v) for v in labels]), slide_ids=sid,
                   store_index=np.full(len(sid), -1, np.int64), rows=rows,
                   coords=np.zeros((len(sid), 2), np.int64),
                   splits=np.asarray(list(splits) if splits is not None else [""] * len(sid), dtype=str).reshape(-1),
                   run_id=run_id)

    @classmethod
    def from_stores(cls, stores: Sequence[str | Path], run_id: str, *,
                    labels_csv: str | Path | None = None) -> LatentTable:
        """Latents of ``run_id`` from every store, labelled by the manifest or a tile-label CSV.

        With ``labels_csv`` only the patches it lists are kept; without it every patch gets its
        store's slide-level ``label`` attribute (from the manifest given to ``pathgan tile``).

        Raises
        ------
        StoreError
            A store is not complete or has no complete latents of ``run_id``.
        ConfigError
            No stores; a store without a manifest label (and no CSV); stores whose latents come
            from different generator/encoder checkpoints; a malformed tile-label CSV (every
            problem listed with its row number: missing columns, unknown slide, coordinates that
            match no patch, duplicates, empty labels).
        """
        return _table_from_stores(stores, run_id, labels_csv)

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def w_dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted(set(self.labels.tolist()))

    @property
    def y(self) -> np.ndarray:
        """int64 ``[N]`` class index of each row into :attr:`classes`."""
        return np.searchsorted(np.asarray(self.classes), self.labels).astype(np.int64)

    @property
    def slides(self) -> list[str]:
        """Sorted unique slide ids."""
        return sorted(set(self.slide_ids.tolist()))

    def slide_labels(self) -> dict[str, str] | None:
        """The label of each slide when every slide's patches share one label, else None."""
        slides, inverse = np.unique(self.slide_ids, return_inverse=True)
        pairs = np.unique(np.stack([inverse, np.searchsorted(np.asarray(self.classes), self.labels)]), axis=1)
        if pairs.shape[1] != len(slides):  # some slide pairs with two labels
            return None
        classes = np.asarray(self.classes)
        return {str(slides[i]): str(classes[c]) for i, c in pairs.T.tolist()}

    def subset(self, mask: np.ndarray) -> LatentTable:
        """The rows where ``mask`` (bool ``[N]``) is True."""
        m = np.asarray(mask, bool)
        return replace(self, latents=self.latents[m], labels=self.labels[m], slide_ids=self.slide_ids[m],
                       store_index=self.store_index[m], rows=self.rows[m], coords=self.coords[m],
                       splits=self.splits[m])

    def provenance(self) -> dict[str, Any]:
        """JSON-safe description of where the rows came from (only stores that contribute rows)."""
        used = set(self.store_index.tolist())
        return {
            "run_id": self.run_id,
            "stores": [str(p.resolve()) for k, p in enumerate(self.store_paths) if k in used],
            "slide_ids": self.slides,
            "n_patches": len(self),
            "class_counts": {c: int((self.labels == c).sum()) for c in self.classes},
            "label_source": self.label_source,
            "latents": self.latent_provenance,
            "pathgan_version": __version__,
        }


def _table_from_stores(stores: Sequence[str | Path], run_id: str, labels_csv: str | Path | None) -> LatentTable:
    from pathgan.store import PatchStore, check_run_id, latents_attrs

    check_run_id(run_id)
    paths = [Path(p) for p in stores]
    if not paths:
        raise ConfigError("no patch stores given")
    opened = [PatchStore(p) for p in paths]
    latents = [s.latents(run_id) for s in opened]  # StoreError when absent or incomplete
    provenance = _latent_provenance(paths, run_id, [latents_attrs(p, run_id) for p in paths])
    widths = {w.shape[1] for w in latents}
    if len(widths) != 1:
        raise ConfigError(f"latents/{run_id} have different widths across stores: {sorted(widths)}")

    if labels_csv is None:
        unlabelled = [str(s.path) for s in opened if not s.attrs.get("label")]
        if unlabelled:
            raise ConfigError(
                f"{len(unlabelled)} store(s) carry no slide label (manifest column 'label'): "
                f"{unlabelled[:_MAX_LISTED]}; tile them with a manifest that has labels, or give a "
                "tile-label CSV (--labels, columns slide_id,x,y,label)"
            )
        selected = [np.arange(len(s)) for s in opened]
        labels = [np.full(len(s), str(s.attrs["label"]), dtype=object) for s in opened]
        source: dict[str, Any] = {"kind": "manifest"}
    else:
        selected, labels = _tile_labels(Path(labels_csv), opened)
        source = {"kind": "tile_csv", "path": str(Path(labels_csv).resolve()),
                  "sha256": hashlib.sha256(Path(labels_csv).read_bytes()).hexdigest()}

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "label", "slide", "store", "row", "coords", "split")}
    for k, (s, w, sel, lab) in enumerate(zip(opened, latents, selected, labels, strict=True)):
        parts["x"].append(w[sel])
        parts["label"].append(np.asarray(lab, dtype=object))
        parts["slide"].append(np.full(len(sel), s.slide_id, dtype=object))
        parts["store"].append(np.full(len(sel), k, np.int64))
        parts["row"].append(sel.astype(np.int64))
        parts["coords"].append(s.coords[sel])
        parts["split"].append(np.full(len(sel), str(s.attrs.get("split") or ""), dtype=object))
    return LatentTable(
        latents=np.concatenate(parts["x"]).astype(np.float32),
        labels=np.concatenate(parts["label"]).astype(str),
        slide_ids=np.concatenate(parts["slide"]).astype(str),
        store_index=np.concatenate(parts["store"]),
        rows=np.concatenate(parts["row"]),
        coords=np.concatenate(parts["coords"]).reshape(-1, 2),
        splits=np.concatenate(parts["split"]).astype(str),
        store_paths=tuple(paths), run_id=run_id, label_source=source, latent_provenance=provenance,
    )


def _latent_provenance(paths: list[Path], run_id: str, attrs: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator/encoder identity shared by every store's latents; ConfigError if they differ."""
    keys = ("checkpoint_sha256", "encoder_sha256", "refine_steps")
    first = {k: attrs[0].get(k) for k in keys}
    for p, a in zip(paths, attrs, strict=True):
        other = {k: a.get(k) for k in keys}
        if other != first:
            raise ConfigError(
                f"latents/{run_id} of {p} were made by another generator/encoder than those of {paths[0]} "
                f"({other} vs {first}); re-encode the stores with one run (`pathgan encode --run ...`)"
            )
    return {**first, "w_dim": attrs[0].get("w_dim")}


def _tile_labels(csv_path: Path, opened: list[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rows and labels selected per store by a tile-label CSV (read strictly by
    :func:`pathgan.labels.read_label_csv`); ConfigError listing every problem with its line."""
    # slide -> (x, y) -> [(store index, row)]: a slide tiled into several stores labels each of them.
    where: dict[str, dict[tuple[int, int], list[tuple[int, int]]]] = {}
    for k, s in enumerate(opened):
        lookup = where.setdefault(s.slide_id, {})
        for row, (x, y) in enumerate(s.coords.tolist()):
            lookup.setdefault((int(x), int(y)), []).append((k, row))

    def on_a_patch(sid: str, xy: tuple[int, int]) -> str | None:
        if sid not in where:
            return f"slide_id {sid!r} is not among the stores' slides {sorted(where)[:_MAX_LISTED]}"
        if xy not in where[sid]:
            return (f"no patch of slide {sid!r} has its level-0 top-left corner at (x, y) = {xy}; "
                    "x, y must equal a row of the store's coords")
        return None

    table = read_label_csv(csv_path, strict=True, tiles_only=True, check=on_a_patch,
                           what=f"tile-label CSV {csv_path}")
    chosen: list[list[int]] = [[] for _ in opened]
    chosen_labels: list[list[str]] = [[] for _ in opened]
    for sid, tiles in table.tile.items():
        for xy, label in tiles.items():
            for k, row in where[sid][xy]:
                chosen[k].append(row)
                chosen_labels[k].append(label)
    selected, labels = [], []
    for rows, labs in zip(chosen, chosen_labels, strict=True):
        order = np.argsort(np.asarray(rows, np.int64), kind="stable")
        selected.append(np.asarray(rows, np.int64)[order])
        labels.append(np.asarray(labs, dtype=object)[order])
    return selected, labels


# ------------------------------------------------------------------------------------- metrics
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


# ---------------------------------------------------------------------------------- classifier
_ACTIVATIONS = ("identity", "relu", "tanh", "logistic")


def _activate(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "logistic":
        return 1.0 / (1.0 + np.exp(-x))
    return x


@dataclass
class LatentClassifier:
    """A fitted patch classifier on latents, as plain arrays (standardise, dense layers, output).

    ``predict_proba`` standardises with ``x_mean``/``x_scale``, applies the dense layers
    (``weights[i]`` ``[in, out]``, ``biases[i]`` ``[out]``) with ``hidden_activation`` between
    them, and ends with a logistic unit (two classes: P(classes[1])) or a softmax. A logistic
    regression is the case of a single layer.

    Attributes
    ----------
    kind : ``"logreg"`` or ``"mlp"``.
    classes : class names; column ``j`` of :meth:`predict_proba` is ``classes[j]``.
    run_id : the latents' run; inputs must be latents of this run.
    metadata : JSON-safe provenance and metrics, saved in the ``.json``.
    """

    kind: ModelKind
    classes: list[str]
    run_id: str
    x_mean: np.ndarray
    x_scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    hidden_activation: str = "identity"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in get_args(ModelKind):
            raise ConfigError(f"model kind {self.kind!r} is not one of {list(get_args(ModelKind))}")
        if self.hidden_activation not in _ACTIVATIONS:
            raise ConfigError(f"hidden_activation {self.hidden_activation!r} is not one of {list(_ACTIVATIONS)}")
        if len(self.classes) < 2 or len(self.weights) != len(self.biases) or not self.weights:
            raise ConfigError(f"a classifier needs >= 2 classes and matching weights/biases; received "
                              f"{len(self.classes)} classes, {len(self.weights)} weights, {len(self.biases)} biases")
        width = len(self.x_mean)
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ShapeError(f"layer shapes do not chain: weight {list(w.shape)}, bias {list(b.shape)}, input {width}")
            width = w.shape[1]
        if width != (1 if len(self.classes) == 2 else len(self.classes)):
            raise ShapeError(f"the last layer has {width} outputs for {len(self.classes)} classes")

    @property
    def w_dim(self) -> int:
        return len(self.x_mean)

    @property
    def out_activation(self) -> str:
        return "logistic" if len(self.classes) == 2 else "softmax"

    def predict_proba(self, latents: Any) -> np.ndarray:
        """Class probabilities float64 ``[N, n_classes]`` of latents float ``[N, w_dim]``.

        Raises
        ------
        ShapeError
            ``latents`` is not ``[N, w_dim]`` or holds NaN/inf.
        """
        x = np.asarray(latents, np.float64)
        if x.ndim != 2 or x.shape[1] != self.w_dim:
            raise ShapeError(f"latents must be [N, {self.w_dim}] (run {self.run_id!r}); received {list(x.shape)}")
        if not np.all(np.isfinite(x)):
            raise ShapeError("latents hold NaN or infinite values")
        h = (x - self.x_mean) / self.x_scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = _activate(h, self.hidden_activation)
        if len(self.classes) == 2:
            p1 = 1.0 / (1.0 + np.exp(-h[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, latents: Any) -> np.ndarray:
        """Class names str ``[N]`` of the most probable class."""
        return np.asarray(self.classes)[self.predict_proba(latents).argmax(1)]

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"x_mean": self.x_mean, "x_scale": self.x_scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"weight_{i}"] = w
            out[f"bias_{i}"] = b
        return {k: np.ascontiguousarray(v, np.float64) for k, v in out.items()}

    def save(self, path: str | Path) -> Path:
        """Write ``<stem>.npz`` (the arrays) and ``<stem>.json`` (everything else), atomically.

        Nothing is pickled: the ``.npz`` holds float64 arrays only and the ``.json`` records their
        SHA-256, which :func:`load_classifier` checks. Returns the ``.npz`` path.
        """
        npz, meta_path = _pair(Path(path))
        npz.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **self._arrays())  # type: ignore[arg-type]  # numpy's stub
        raw = buf.getvalue()
        digest = hashlib.sha256(raw).hexdigest()
        meta = {
            "format": "pathgan-latent-classifier", "format_version": FORMAT_VERSION,
            "kind": self.kind, "classes": list(self.classes), "run_id": self.run_id, "w_dim": self.w_dim,
            "n_layers": len(self.weights), "hidden_activation": self.hidden_activation,
            "out_activation": self.out_activation, "arrays": npz.name, "arrays_sha256": digest,
            **self.metadata,
        }
        atomic_write_bytes(npz, raw)
        atomic_write_bytes(meta_path, (json.dumps(json_safe(meta), indent=2, allow_nan=False) + "\n").encode())
        return npz


def _pair(path: Path) -> tuple[Path, Path]:
    """``(<stem>.npz, <stem>.json)`` for a ``.npz``, a ``.json``, a bare stem or a folder."""
    if path.is_dir():
        path = path / "classifier.npz"
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".npz"), path.with_name(path.name + ".json")


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars and arrays -> Python, so JSON stays standard."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_classifier(path: str | Path) -> LatentClassifier:
    """Load a classifier written by :meth:`LatentClassifier.save` (``.npz``, ``.json``, stem or folder).

    Raises
    ------
    StoreError
        A file is missing, the arrays do not match the SHA-256 recorded in the ``.json``, or the
        ``.json`` is not a pathgan classifier of a known format version.
    """
    npz, meta_path = _pair(Path(path))
    for p in (npz, meta_path):
        if not p.is_file():
            raise StoreError(f"classifier file {p} does not exist (a classifier is a .npz + .json pair)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{meta_path} is not valid JSON: {err}") from err
    if meta.get("format") != "pathgan-latent-classifier" or meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{meta_path} is not a pathgan latent classifier of format version {FORMAT_VERSION}")
    raw = npz.read_bytes()
    if hashlib.sha256(raw).hexdigest() != meta.get("arrays_sha256"):
        raise StoreError(f"{npz} does not match the SHA-256 recorded in {meta_path} (files from two saves?)")
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:  # the bytes that were hashed
        arrays = {k: np.asarray(data[k]) for k in data.files}
    n = int(meta["n_layers"])
    reserved = {"format", "format_version", "kind", "classes", "run_id", "w_dim", "n_layers",
                "hidden_activation", "out_activation", "arrays", "arrays_sha256"}
    return LatentClassifier(
        kind=meta["kind"], classes=[str(c) for c in meta["classes"]], run_id=str(meta["run_id"]),
        x_mean=arrays["x_mean"], x_scale=arrays["x_scale"],
        weights=[arrays[f"weight_{i}"] for i in range(n)], biases=[arrays[f"bias_{i}"] for i in range(n)],
        hidden_activation=str(meta["hidden_activation"]),
        metadata={k: v for k, v in meta.items() if k not in reserved},
    )


def _fit_arrays(x: np.ndarray, y: np.ndarray, classes: list[str], model: ModelKind, seed: int,
                run_id: str) -> LatentClassifier:
    """Fit on rows ``x`` [n, d] with class indices ``y`` into ``classes`` (all of them present)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    if model not in get_args(ModelKind):
        raise ConfigError(f"model {model!r} is not one of {list(get_args(ModelKind))}")
    x = np.asarray(x, np.float64)
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    if model == "logreg":
        # class_weight="balanced": slides contribute very different patch counts per class.
        est = LogisticRegression(C=LOGREG_C, max_iter=5000, class_weight="balanced").fit(xs, y)
        weights, biases, act = [est.coef_.T], [est.intercept_], "identity"
    else:
        est = MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, alpha=MLP_ALPHA, early_stopping=True,
                            validation_fraction=0.1, n_iter_no_change=10, max_iter=300, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter on hard problems
            try:
                est.fit(xs, y)
            except ValueError as err:  # early stopping's stratified split needs >= 2 rows per class
                raise ConfigError(f"the MLP cannot hold out 10 % of {len(y)} rows for early stopping "
                                  f"(class counts {np.bincount(y).tolist()}): {err}; use model='logreg'") from err
        weights, biases, act = list(est.coefs_), list(est.intercepts_), str(est.activation)
    if list(est.classes_) != list(range(len(classes))):
        raise ConfigError(f"training rows hold classes {list(est.classes_)}, expected 0..{len(classes) - 1}")
    return LatentClassifier(
        kind=model, classes=list(classes), run_id=run_id,
        x_mean=np.asarray(scaler.mean_, np.float64), x_scale=np.asarray(scaler.scale_, np.float64),
        weights=[np.asarray(w, np.float64) for w in weights], biases=[np.asarray(b, np.float64) for b in biases],
        hidden_activation=act,
    )


def fit_classifier(table: LatentTable, model: ModelKind = "logreg", *, seed: int = 0) -> LatentClassifier:
    """Fit a patch classifier on every row of ``table``; its metadata holds the table's provenance.

    ``logreg``: logistic regression on standardised latents (L2, C = :data:`LOGREG_C`, balanced
    class weights). ``mlp``: one hidden layer of :data:`MLP_HIDDEN` ReLU units, L2
    :data:`MLP_ALPHA`, early stopping on 10 % of the rows.

    Raises
    ------
    ConfigError
        Fewer than two classes, or an unknown model.
    """
    if len(table.classes) < 2:
        raise ConfigError(f"a classifier needs at least two classes; the labels hold {table.classes}")
    clf = _fit_arrays(table.latents, table.y, table.classes, model, seed, table.run_id)
    clf.metadata = {"provenance": table.provenance(), "seed": seed,
                    "params": {"C": LOGREG_C} if model == "logreg" else {"hidden": list(MLP_HIDDEN), "alpha": MLP_ALPHA}}
    return clf


# ---------------------------------------------------------------------------- cross-validation
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


# ------------------------------------------------------------------------------------- figures
def confusion_figure(confusion: Any, classes: Sequence[str], *, title: str = "") -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) as a matplotlib Figure.

    Cells are coloured by the row-normalised rate (recall per true class) and show the count and
    that rate. Built without pyplot; save it with ``fig.savefig(path)``.
    """
    cm = np.asarray(confusion, np.float64)
    if cm.ndim != 2 or cm.shape != (len(classes), len(classes)):
        raise ShapeError(f"confusion must be [{len(classes)}, {len(classes)}]; received {list(cm.shape)}")
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.6 + 0.7 * len(classes)
    fig = Figure(figsize=(size + 1.2, size), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{rates[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return fig
