"""``pathgan tile`` on the real H&E slides in ../shared/data (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pathgan.cli import main
from pathgan.errors import MissingMPPError, SlideOpenError
from pathgan.slide import open_slide, slide_mpp
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # tiles with a Dask cluster

CMU = "slides/CMU-1-Small-Region.svs"  # JPEG (classic Aperio RGB), 0.499 um/px, one level
TCGA = "slides/TCGA-CR-7395-01A-01-TS1.svs"  # JPEG 2000, two levels, no MPP in the file


@pytest.mark.parametrize("name", [CMU, TCGA])
def test_backends_give_identical_pixels(data_dir: Path, name: str) -> None:
    a, b = open_slide(data_dir / name, "openslide"), open_slide(data_dir / name, "tiffslide")
    assert a.level_dimensions == b.level_dimensions
    rng = np.random.default_rng(0)
    w, h = a.level_dimensions[0]
    for _ in range(4):
        loc = (int(rng.integers(0, w - 300)), int(rng.integers(0, h - 300)))
        np.testing.assert_array_equal(a.read_region(loc, 0, (300, 300)), b.read_region(loc, 0, (300, 300)))
    # Coarser levels: the backends map level-0 locations with differently rounded downsamples
    # (openslide 2.0005 vs the exact size ratio), so compare whole levels read from the origin.
    for level, (lw, lh) in enumerate(a.level_dimensions[1:], start=1):
        np.testing.assert_array_equal(a.read_region((0, 0), level, (lw, lh)), b.read_region((0, 0), level, (lw, lh)))


def test_real_mpp_and_refusals(data_dir: Path) -> None:
    assert slide_mpp(open_slide(data_dir / CMU)) == (0.499, 0.499)
    with pytest.raises(MissingMPPError, match=r"'TCGA-CR-7395-01A-01-TS1.svs'.*mpp_override"):
        slide_mpp(open_slide(data_dir / TCGA))
    with pytest.raises(SlideOpenError, match=r"broken.svs"):
        open_slide(data_dir / "slides" / "broken.svs")


def _reference(reader, coords: np.ndarray, level: int, footprint0: float, patch_px: int) -> np.ndarray:
    """Independent reference: openslide read_region of the ceil'd footprint + PIL LANCZOS resize."""
    (w0, _), (wl, _) = reader.level_dimensions[0], reader.level_dimensions[level]
    f = footprint0 * wl / w0
    out = []
    for x, y in coords:
        reg = reader.read_region((int(x), int(y)), level, (int(np.ceil(f)) + 1, int(np.ceil(f)) + 1))
        out.append(np.asarray(Image.fromarray(reg).resize((patch_px, patch_px), Image.Resampling.LANCZOS, box=(0, 0, f, f))))
    return np.stack(out).astype(float)


def _jpeg_error(patches: np.ndarray, quality: int = 90) -> float:
    """Mean absolute error of a JPEG round trip at the store's default settings."""
    import imagecodecs

    rt = [imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(p.astype(np.uint8), level=quality)) for p in patches]
    return float(np.abs(np.stack(rt).astype(float) - patches).mean())


def test_tile_real_slides_match_openslide(data_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "slide_id,path,mpp_override\n"
        f"cmu,{data_dir / CMU},\n"
        f"tcga,{data_dir / TCGA},0.25\n"  # pretend 40x so that 1.0 um/px comes from level 1 (JPEG 2000)
        f"broken,{data_dir / 'slides' / 'broken.svs'},\n"
        f"nompp,{data_dir / TCGA},\n"
    )
    res = CliRunner().invoke(main, ["tile", "--manifest", str(manifest), "--out", str(tmp_path / "o"),
                                    "--workers", "2", "--mpp", "1.0", "--patch-px", "128", "--no-progress"])
    assert res.exit_code == 1, res.output  # broken and nompp failed, the others went on
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln.split()}
    assert " done " in lines["cmu"] and " done " in lines["tcga"]
    assert " failed " in lines["broken"] and "cannot read slide" in lines["broken"]
    assert " failed " in lines["nompp"] and "mpp_override" in lines["nompp"]

    reader = open_slide(data_dir / CMU, "openslide")
    cmu = PatchStore(tmp_path / "o" / "cmu.zarr")
    assert cmu.attrs["source_level"] == 0 and cmu.attrs["decode_scale"] == 2  # 0.499 -> 1.0: DCT 1/2, then 2.004/2 LANCZOS
    assert len(cmu) > 20
    got = cmu.read(np.arange(len(cmu))).astype(float)
    ref = _reference(reader, cmu.coords, 0, cmu.attrs["footprint0"][0], 128)
    # Allowed error: what JPEG q90 alone does to the reference, plus the filter difference between
    # libjpeg's DCT halving + LANCZOS and a direct LANCZOS (1.65 measured on this slide).
    assert np.abs(got - ref).mean() < _jpeg_error(ref) + 2.0
    assert np.abs(got.mean((0, 1, 2)) - ref.mean((0, 1, 2))).max() < 0.5  # no colour shift

    tcga = PatchStore(tmp_path / "o" / "tcga.zarr")
    assert tcga.attrs["source_level"] == 1 and tcga.attrs["source"]["mpp_source"] == "mpp_override"
    reader = open_slide(data_dir / TCGA, "openslide")
    idx = np.arange(0, len(tcga), 4)
    got = tcga.read(idx).astype(float)
    ref = _reference(reader, tcga.coords[idx], 1, tcga.attrs["footprint0"][0], 128)
    # openslide maps level-0 coordinates to level 1 with its rounded downsample (2.0005): sub-pixel offsets
    assert np.abs(got - ref).mean() < _jpeg_error(ref) + 3.0
    assert np.abs(got.mean((0, 1, 2)) - ref.mean((0, 1, 2))).max() < 1.0  # a colour-space error is tens


def test_scaled_decode_on_real_tissue(data_dir: Path, tmp_path: Path) -> None:
    """A 2x DCT-scaled decode of real Aperio JPEG tiles equals 2x area averaging within ~1 level."""
    from pathgan.slide._tiles import TiffTileSource, find_tiff_level

    path = data_dir / CMU
    reader = open_slide(path, "openslide")
    src = TiffTileSource(path, find_tiff_level(path, reader.level_dimensions[0]))  # type: ignore[arg-type]
    diffs = []
    for tx, ty in [(2, 3), (4, 5), (6, 8), (3, 10)]:
        full = reader.read_region((tx * 240, ty * 240), 0, (240, 240)).astype(float)
        half = src.decode(tx, ty, 2).astype(float)
        np.testing.assert_array_equal(src.decode(tx, ty, 1), full.astype(np.uint8))  # RGB JPEG colours right
        diffs.append(np.abs(half - full.reshape(120, 2, 120, 2, 3).mean((1, 3))).mean())
    assert max(diffs) < 1.0
