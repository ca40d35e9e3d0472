"""Slide reading: MPP lookup, backends, thumbnails and the decode-once patch reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathgan.errors import MissingMPPError, SlideOpenError
from pathgan.slide import PatchReader, SlideGeometry, open_slide, read_thumbnail, slide_mpp
from pathgan.tiling import grid_coords, plan_geometry


@dataclass
class FakeReader:
    properties: dict[str, str] = field(default_factory=dict)
    path: Path = Path("fake.svs")
    backend: str = "fake"


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"openslide.mpp-x": "0.2527", "openslide.mpp-y": "0.2531"}, (0.2527, 0.2531)),
        ({"aperio.MPP": "0.499"}, (0.499, 0.499)),
        ({"tiff.XResolution": "40000", "tiff.YResolution": "40000", "tiff.ResolutionUnit": "centimeter"}, (0.25, 0.25)),
        ({"tiff.XResolution": "50800", "tiff.YResolution": "50800", "tiff.ResolutionUnit": "inch"}, (0.5, 0.5)),
        # a nonsense openslide value (1 px per cm written by a scanner default) falls through to aperio.MPP
        ({"openslide.mpp-x": "10000", "openslide.mpp-y": "10000", "aperio.MPP": "0.25"}, (0.25, 0.25)),
    ],
)
def test_mpp_sources(props: dict[str, str], expected: tuple[float, float]) -> None:
    assert slide_mpp(FakeReader(props)) == pytest.approx(expected)  # type: ignore[arg-type]


def test_missing_mpp_is_refused_with_instructions() -> None:
    reader = FakeReader({"tiff.XResolution": "1", "tiff.YResolution": "1", "tiff.ResolutionUnit": "inch"})
    with pytest.raises(MissingMPPError) as info:
        slide_mpp(reader)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "'fake.svs'" in msg and "mpp_override" in msg and "25400" in msg
    assert slide_mpp(reader, 0.5) == (0.5, 0.5)  # type: ignore[arg-type]
    with pytest.raises(MissingMPPError, match="outside the plausible range"):
        slide_mpp(reader, 500.0)  # type: ignore[arg-type]


def test_backends_agree_and_errors(tissue_slide, corrupt_slide, tmp_path: Path) -> None:
    path, _img, _ = tissue_slide
    a, b = open_slide(path, "openslide"), open_slide(path, "tiffslide")
    assert a.level_dimensions == b.level_dimensions == ((3072, 2048), (768, 512))
    for level, loc in [(0, (700, 300)), (1, (1000, 800))]:
        np.testing.assert_array_equal(a.read_region(loc, level, (300, 200)), b.read_region(loc, level, (300, 200)))
    assert slide_mpp(a) == slide_mpp(b) == (0.25, 0.25)
    # outside the slide: white glass, not black
    assert a.read_region((3000, 2000), 0, (200, 200))[-1, -1].tolist() == [255, 255, 255]
    with pytest.raises(SlideOpenError, match=r"cannot read slide .*corrupt.svs"):
        open_slide(corrupt_slide)
    with pytest.raises(SlideOpenError, match="does not exist"):
        open_slide(tmp_path / "none.svs")


def test_thumbnail_matches_area_average(tissue_slide) -> None:
    path, img, _ = tissue_slide
    reader = open_slide(path)
    geom = SlideGeometry(level_dimensions=reader.level_dimensions, mpp=(0.25, 0.25))
    thumb, mpp = read_thumbnail(reader, geom, 8.0, block_px=40)  # small blocks exercise the seams
    assert thumb.shape == (64, 96, 3) and mpp == (8.0, 8.0)
    ref = img.reshape(64, 32, 96, 32, 3).mean(axis=(1, 3))
    # thumbnail comes from level 1 (JPEG, 4x box) then a further 8x box: within JPEG noise of the truth
    assert np.abs(thumb.astype(float) - ref).mean() < 3.0


def _reference(reader, coords, geom, reducing_gap: float | None = 1.0) -> np.ndarray:
    """Independent reference: openslide read_region at level 0 of the ceil'd footprint, then PIL
    resize (box reduction by the integer part, LANCZOS for the rest, as documented; or pure
    LANCZOS with ``reducing_gap=None``)."""
    out = []
    f = geom.footprint0[0]
    for x, y in coords:
        reg = reader.read_region((int(x), int(y)), 0, (int(np.ceil(f)), int(np.ceil(f))))
        img = Image.fromarray(reg).resize((geom.patch_px,) * 2, Image.Resampling.LANCZOS, box=(0, 0, f, f),
                                          reducing_gap=reducing_gap)
        out.append(np.asarray(img))
    return np.stack(out)


@pytest.mark.parametrize("target_mpp", [0.5, 0.37])
def test_patch_reader_matches_reference_and_decodes_once(tissue_slide, target_mpp: float) -> None:
    path, _, _ = tissue_slide
    reader = open_slide(path, "openslide")
    g1 = plan_geometry(mpp0=(0.25, 0.25), level=0, level_downsample=(1.0, 1.0), target_mpp=target_mpp,
                       patch_px=128, stride_px=128, scale_allowed=lambda s: s == 1)
    coords = grid_coords((3072, 2048), g1.footprint0, g1.stride0)
    fast = PatchReader(path, "auto", g1)
    got = fast.read(coords)
    assert fast.uses_tiles
    # each needed 256-px tile decoded once: the grid covers the slide, so that is every tile it overlaps
    span_x = int(np.ceil((coords[:, 0].max() + g1.footprint0[0]) / 256))
    span_y = int(np.ceil((coords[:, 1].max() + g1.footprint0[1]) / 256))
    assert fast.tiles_decoded == span_x * span_y
    slow = PatchReader(path, "openslide", g1, use_tiles=False).read(coords)
    np.testing.assert_array_equal(got, slow)  # same pixels by two read paths
    ref = _reference(reader, coords[::7], g1)
    assert np.abs(got[::7].astype(int) - ref).max() <= 1  # same resampler: rounding only
    lanczos = _reference(reader, coords[::7], g1, reducing_gap=None)
    assert np.abs(got[::7].astype(float) - lanczos).mean() < 2.0  # box-then-LANCZOS ~ pure LANCZOS
    # in batches (as the shard tasks read): the same patches, and still each tile decoded once
    batched = PatchReader(path, "auto", g1)
    parts = list(batched.iter_read(coords, 5))
    assert [start for start, _ in parts] == list(range(0, len(coords), 5))
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), got)
    assert batched.tiles_decoded == span_x * span_y


def test_scaled_decode_close_to_full_decode(tissue_slide) -> None:
    path, _, _ = tissue_slide
    kw = dict(mpp0=(0.25, 0.25), level=0, level_downsample=(1.0, 1.0), target_mpp=0.5, patch_px=128, stride_px=128)
    g2 = plan_geometry(**kw, scale_allowed=lambda s: True)
    g1 = plan_geometry(**kw, scale_allowed=lambda s: s == 1)
    assert g2.decode_scale == 2 and g1.decode_scale == 1
    coords = grid_coords((3072, 2048), g1.footprint0, g1.stride0)
    half = PatchReader(path, "auto", g2).read(coords).astype(float)
    full = PatchReader(path, "auto", g1).read(coords).astype(float)
    # this synthetic texture is per-pixel noise (worst case for DCT vs LANCZOS); on real tissue
    # the difference is ~0.2 (see the integration tests). Structure must agree exactly on average.
    assert np.abs(half - full).mean() < 4.0
    assert abs(half.mean() - full.mean()) < 0.5
