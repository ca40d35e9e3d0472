"""pathgan.stain on every real image in ../shared/data, and Macenko against torchstain.

Skipped when the data folder is absent (``data_dir`` fixture, PATHGAN_DATA overrides). Thresholds sit
a margin beyond the values measured when they were set (noted beside each), so a regression fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from pathgan.stain import Macenko, Reinhard, Vahadane
from pathgan.stain import _numpy_ops as npo

pytestmark = pytest.mark.integration

GLOBS = ("images/*.png", "images/*.jpg", "tiles/crc_classes/*", "tiles/categories/*", "thumbnails/*")
# Glass, or nearly: these must fall back (too few tissue pixels); every H&E image in images/ and
# tiles/crc_classes/ other than BACK must not.
BLANK = {"BACK-AAQSHYMA.tif", "no-tissue.png", "almost-white-1.png", "almost-white-ihc.png"}
METHODS = (Macenko, Vahadane, Reinhard)


def load_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3); transparent pixels (tiles at a slide edge) become white glass."""
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


@pytest.fixture(scope="module")
def images(data_dir: Path) -> dict[str, np.ndarray]:
    paths = sorted(p for pattern in GLOBS for p in data_dir.glob(pattern) if p.is_file())
    if not paths:
        pytest.skip(f"no images under {data_dir} ({', '.join(GLOBS)})")
    return {str(p.relative_to(data_dir)): load_rgb(p) for p in paths}


@pytest.fixture(scope="module")
def target(images: dict[str, np.ndarray]) -> np.ndarray:
    return images["images/torchstain_target.png"]


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0)))


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_every_real_image_normalises(cls: type, images: dict[str, np.ndarray], target: np.ndarray) -> None:
    normaliser = cls().fit(target)
    problems = []
    for name, img in images.items():
        out, info = normaliser.transform_with_info(img)  # must not raise on any of them
        if out.dtype != np.uint8 or out.shape != img.shape:
            problems.append(f"{name}: output {out.dtype} {out.shape}")
        blank = Path(name).name in BLANK
        he = name.startswith(("images/", "tiles/crc_classes/")) and not blank
        if blank and not info.fallback:
            problems.append(f"{name}: glass was not flagged as fallback")
        if he and info.fallback:
            problems.append(f"{name}: H&E image fell back to the reference")
        if cls is not Reinhard:
            s = info.stain_matrix
            if not (np.all(s > 0) and np.allclose(np.linalg.norm(s, axis=0), 1.0, atol=1e-5) and s[0, 0] >= s[0, 1]):
                problems.append(f"{name}: stain matrix not unit/positive/H-first: {s.T.round(3).tolist()}")
        elif not info.fallback and not np.all(np.isfinite(info.mean)):
            problems.append(f"{name}: LAB statistics not finite")
    assert len(images) >= 70  # 12 images, 10 CRC tiles, 34 category tiles, 17 thumbnails
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("source", "goal"), [("images/torchstain_source.png", "images/torchstain_target.png"),
                                              ("images/tiatoolbox_source_image.png", "images/tiatoolbox_target_image.png")])
@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_normalising_moves_an_image_towards_its_target(cls: type, source: str, goal: str,
                                                       images: dict[str, np.ndarray]) -> None:
    src, tgt = images[source], images[goal]
    normaliser = cls().fit(tgt)
    out = normaliser.transform(src)
    mean_lab = [rgb2lab(x).reshape(-1, 3).mean(axis=0) for x in (src, out, tgt)]
    before, after = np.linalg.norm(mean_lab[0] - mean_lab[2]), np.linalg.norm(mean_lab[1] - mean_lab[2])
    # measured: mean-LAB distance 25.2 -> 7.8 / 8.9 / 0.0 (torchstain pair), 13.7 -> 5.6 / 5.3 / 0.1 (tiatoolbox)
    assert before > 10.0
    assert after < (1.0 if cls is Reinhard else 0.7 * before)
    if cls is not Reinhard:
        ref = np.asarray(normaliser.target.stain_matrix)
        angle_before = _angles_deg(cls().stain_matrix(src), ref).max()
        angle_after = _angles_deg(cls().stain_matrix(out), ref).max()
        # measured: 9.5 -> 0.3 / 8.2 -> 3.0 (torchstain pair), 9.3 -> 1.0 / 8.8 -> 1.3 (tiatoolbox)
        assert angle_after < min(4.5, 0.5 * angle_before)


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_torch_batch_matches_numpy_on_real_tiles(cls: type, images: dict[str, np.ndarray], target: np.ndarray) -> None:
    tiles = np.stack([img for name, img in images.items() if name.startswith("tiles/crc_classes/")])
    normaliser = cls().fit(target)
    out_np, info_np = normaliser.transform_with_info(tiles)
    out_t, info_t = normaliser.transform_with_info(torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous())
    diff = np.abs(out_t.permute(0, 2, 3, 1).numpy().astype(int) - out_np)
    assert diff.max() <= 1 and diff.mean() < 0.01
    np.testing.assert_array_equal(info_t.fallback.numpy(), info_np.fallback)


def test_macenko_agrees_with_torchstain(images: dict[str, np.ndarray]) -> None:
    """torchstain 1.4.1 (numpy backend) is an independent Macenko. It centres the covariance and
    rejects slightly more pixels; on H&E both find the same stains within a few degrees."""
    torchstain = pytest.importorskip("torchstain")
    ours = Macenko()
    worst: dict[str, float] = {}
    for name, img in images.items():
        est = ours.estimate(img)
        if est.fallback:
            continue
        ref = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
        try:
            ref.fit(img)
        except Exception:  # torchstain fails with numpy errors where it finds no tissue
            continue
        theirs = np.asarray(ref.HERef, dtype=np.float64)
        theirs /= np.linalg.norm(theirs, axis=0)
        worst[name] = float(_angles_deg(est.stain_matrix, theirs).max())
    he = {k: v for k, v in worst.items() if k.startswith(("images/", "tiles/crc_classes/", "tiles/categories/tissue"))}
    assert len(worst) >= 55 and len(he) >= 25
    # measured over the 61 images both find tissue in: median 2.8, 90th percentile 9.3; the 27 H&E
    # images at most 9.8 (the DEB tile; torchstain_target 7.9); pen-marked thumbnails differ most
    assert float(np.median(list(worst.values()))) < 4.0
    assert float(np.percentile(list(worst.values()), 90)) < 12.0
    assert max(he.values()) < 12.0, sorted(he.items(), key=lambda kv: -kv[1])[:3]


def test_vahadane_agrees_with_macenko_on_h_and_e(images: dict[str, np.ndarray]) -> None:
    """Two different estimators of the same stains: close on every H&E tile."""
    worst = {}
    for name, img in images.items():
        if not name.startswith(("images/", "tiles/crc_classes/")) or Path(name).name in BLANK:
            continue
        worst[name] = float(_angles_deg(Macenko().stain_matrix(img), Vahadane().stain_matrix(img)).max())
    assert len(worst) >= 20
    assert max(worst.values()) < 10.0, sorted(worst.items(), key=lambda kv: -kv[1])[:3]  # measured: at most 6.3


def test_tissue_threshold_is_the_reference_codes() -> None:
    """beta = 0.15 keeps the pixels Macenko's reference code and torchstain keep (Io = 240)."""
    assert npo.tissue_level(0.15) == 205
    levels = np.arange(256)
    assert np.array_equal(-np.log((levels + 1) / 240.0) >= 0.15, levels <= npo.tissue_level(0.15))
