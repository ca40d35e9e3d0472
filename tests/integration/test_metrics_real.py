"""pathgan.metrics with the real FID Inception on real H&E tiles (skipped when either is absent).

Ten 224x224 CRC tiles (one per tissue class) are cut into 4 quadrants each. The two "real"
halves take diagonal quadrants (0, 3) and (1, 2) of every tile, so both halves hold every
tissue class. Measured when written (KID, not x1e3, n=20 per side): half vs half -0.024, vs the other
half JPEG q10 +0.007, vs the other half Gaussian-blurred (sigma 2) +0.020. Only the blurred
copies are tested, to keep the Inception work at 60 crops (~5-30 s on 2 CPU cores).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from pathgan.metrics import (
    InceptionExtractor,
    MissingWeightsError,
    evaluate_features,
    extract_features,
    kid,
    locate_inception_weights,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # loads the Inception network (about a minute)

DATA = Path(
    os.environ.get("PATHGAN_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
)
TILES = DATA / "tiles" / "crc_classes"

if not TILES.is_dir():
    pytest.skip(f"real tiles not found under {TILES} (set PATHGAN_DATA)", allow_module_level=True)
try:
    locate_inception_weights()
except MissingWeightsError as exc:
    pytest.skip(f"FID Inception weights unavailable: {exc}", allow_module_level=True)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))


def _quadrants(img: np.ndarray) -> list[np.ndarray]:
    h, w = img.shape[0] // 2, img.shape[1] // 2
    return [img[:h, :w], img[:h, w:], img[h:, :w], img[h:, w:]]


@pytest.fixture(scope="module")
def tiles() -> list[np.ndarray]:
    import tifffile

    paths = sorted(TILES.glob("*.tif"))
    if len(paths) < 10:
        pytest.skip(f"expected 10 tiles in {TILES}, found {len(paths)}")
    return [np.asarray(tifffile.imread(p))[..., :3] for p in paths]


@pytest.fixture(scope="module")
def extractor() -> InceptionExtractor:
    return InceptionExtractor(batch_size=20)


@pytest.fixture(scope="module")
def halves(tiles: list[np.ndarray], extractor: InceptionExtractor) -> dict[str, np.ndarray]:
    quads = [_quadrants(t) for t in tiles]
    half_a = _to_tensor([q[i] for q in quads for i in (0, 3)])
    half_b = [q[i] for q in quads for i in (1, 2)]
    start = time.perf_counter()
    feats_a = extractor(half_a)  # the extractor itself, to check its raw output
    seconds = time.perf_counter() - start
    return {
        "a_raw": feats_a.numpy(),
        "a_seconds": np.array(seconds),
        "a": extract_features(extractor, [half_a[:10], half_a[10:]]),
        "b": extract_features(extractor, _to_tensor(half_b)),
        "b_blur": extract_features(extractor, _to_tensor([_blur(x, 2.0) for x in half_b])),
    }


def test_inception_features_shape_and_values(halves: dict[str, np.ndarray]) -> None:
    feats = halves["a_raw"]
    assert feats.shape == (20, 2048)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert float(feats.min()) >= 0.0  # pool_3 averages ReLU outputs
    assert float(feats.std(axis=0).mean()) > 0.01  # different tissues give different features
    # batching does not change the result
    np.testing.assert_allclose(halves["a"], feats, rtol=1e-4, atol=1e-4)
    assert float(halves["a_seconds"]) < 40.0  # ~2-15 images/s on 2 CPU cores


def test_kid_separates_degraded_from_clean(halves: dict[str, np.ndarray]) -> None:
    def score(fake: str) -> float:
        return kid(halves["a"], halves[fake], n_subsets=20, subset_size=20, seed=0)[0]

    assert score("b_blur") > score("b") + 0.02


def test_evaluate_features_on_real_halves(halves: dict[str, np.ndarray]) -> None:
    real = np.concatenate([halves["a"], halves["b"]])
    clean = evaluate_features(real, halves["b"], seed=0)
    blurred = evaluate_features(real, halves["b_blur"], seed=0)
    for out in (clean, blurred):
        assert all(np.isfinite(float(v)) for v in out.values())
        assert out["fid_floor"] > 0
    assert blurred["kid_mean"] > clean["kid_mean"]
    assert blurred["fid_matched"] > clean["fid_matched"]
