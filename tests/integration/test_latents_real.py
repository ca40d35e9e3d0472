"""Quality checks of the latent space of a small model of the real slides (issue 4, item 5).

The model (tests/integration/conftest.py) trains for minutes on CPU, so these tests check that the
latent machinery moves things the right way, with margins a weak model clears; the README reports
the same measures for the longer CPU run.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pathgan import latents as L
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALPHAS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def _walk_densities(model: L.LatentModel, d_unit: np.ndarray, scale: float, seeds: range) -> np.ndarray:
    """Mean nuclei density of generated images per alpha, over walks from w of the given seeds: [len(ALPHAS)]."""
    starts = np.concatenate([model.sample_w(1, seed=s) for s in seeds])  # [S, w_dim]
    paths = L.walk(starts, d_unit * scale, ALPHAS)  # [S, A, w_dim]
    images = model.generate(paths.reshape(-1, model.w_dim))
    return L.nuclei_density(images).reshape(len(seeds), len(ALPHAS)).mean(0)


def test_walking_the_nuclei_direction_raises_nuclei_density(real_latent_run) -> None:
    """Direction = mean w of the densest third of 600 generated images - mean w of the sparsest
    third (density measured with rgb2hed); walking 32 other seeds along it raises the measured
    density at every step, on average."""
    model = L.LatentModel.load(real_latent_run.run_dir)
    w = model.sample_w(600, seed=1000)
    density = L.nuclei_density(model.generate(w))
    low, high = L.labels_by_quantile(density)
    d_unit = L.direction(w[high], w[low], normalize=True)
    scale = float(np.std(w @ d_unit))  # one alpha unit = one std of w along the direction
    means = _walk_densities(model, d_unit, scale, range(32))
    assert np.all(np.diff(means) > 0), f"mean density per alpha {dict(zip(ALPHAS, means.round(4), strict=True))}"
    # Control: density is this generator's main axis of variation, so random directions of the
    # same length move it too (measured: 0.05-0.13 over four of them vs 0.21 for the learned one);
    # the learned direction must move it clearly more than random ones do on average.
    rng = np.random.default_rng(0)
    moves = []
    for _ in range(4):
        r = rng.standard_normal(model.w_dim).astype(np.float32)
        ctrl = _walk_densities(model, r / np.linalg.norm(r), scale, range(32))
        moves.append(abs(ctrl[-1] - ctrl[0]))
    assert means[-1] - means[0] > 1.5 * float(np.mean(moves)), (means, moves)


def _probe(x_train, y_train, x_test, y_test) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    clf.fit(x_train, y_train)
    return float(balanced_accuracy_score(y_test, clf.predict(x_test)))


def test_linear_probe_tells_slides_apart_on_held_out_regions(real_latent_run) -> None:
    """Which slide a patch comes from, trained on the left half of each slide and tested on the
    right half (spatially held out): balanced accuracy >= 0.65, chance + 0.15. With ~370 test
    patches a chance classifier's 95% interval is about 0.5 +- 0.05, so 0.65 is far from luck.
    The slides differ in tissue and preparation (skin, fixed; head-and-neck SCC, frozen).

    Two slides allow no slide-level hold-out, and a tissue-type probe across them is ill-posed here:
    haematoxylin in the frozen TCGA section is so faint that rgb2hed puts nearly all its patches at
    nuclei density ~0 (terciles of 0 vs 0.001 are noise). The fixture model is weak (minutes of CPU):
    it scored 0.77; mean/std RGB features score 0.95 on the same split (README reports both)."""
    run_id = real_latent_run.run_id
    xs_tr, ys_tr, xs_te, ys_te = [], [], [], []
    for k, path in enumerate(real_latent_run.stores):
        store = PatchStore(path)
        w = store.latents(run_id)
        left = store.coords[:, 0] < np.median(store.coords[:, 0])
        xs_tr.append(w[left])
        ys_tr.append(np.full(left.sum(), k))
        xs_te.append(w[~left])
        ys_te.append(np.full((~left).sum(), k))
    score = _probe(np.concatenate(xs_tr), np.concatenate(ys_tr), np.concatenate(xs_te), np.concatenate(ys_te))
    assert score >= 0.65, score
