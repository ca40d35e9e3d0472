"""A classifier on patch latents (logistic regression or a small MLP), saved as ``.npz`` + ``.json``
without pickle and loaded back by :func:`load_classifier`."""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from pathgan._io import atomic_write_bytes
from pathgan.downstream._table import LatentTable
from pathgan.errors import ConfigError, ShapeError, StoreError

__all__ = ["FORMAT_VERSION", "LOGREG_C", "MLP_ALPHA", "MLP_HIDDEN", "LatentClassifier", "ModelKind", "fit_classifier", "json_safe", "load_classifier"]

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
