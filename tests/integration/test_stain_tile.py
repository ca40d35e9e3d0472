"""``pathgan tile --stain-normalize``: the target is fitted once, patches are normalised before storing.

Synthetic slides from tests/_synth.py (always run) and one real slide (skipped without ../shared/data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pathgan.cli import main
from pathgan.config import TileConfig
from pathgan.errors import ConfigError, StainError
from pathgan.manifest import SlideEntry
from pathgan.parallel import dask_client
from pathgan.stages import tile_slides
from pathgan.stages.tile import fit_stain_target
from pathgan.stain import Macenko, normaliser_from_params
from pathgan.stain import _numpy_ops as npo
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # tiles with a Dask cluster

BASE = {"patch_px": 128, "patches_per_shard": 16, "codec": "zstd"}  # lossless: pixels compare exactly


def _he_image(stains: np.ndarray, seed: int, size: int = 128) -> np.ndarray:
    """An H&E-like image by Beer-Lambert from a (3, 2) stain matrix (nuclei, stroma, mixtures)."""
    rng = np.random.default_rng(seed)
    conc = np.zeros((size * size, 2))
    kind = rng.choice(3, size=size * size, p=[0.3, 0.4, 0.3])
    conc[kind == 0, 0] = rng.uniform(0.9, 2.0, (kind == 0).sum())
    conc[kind == 1, 1] = rng.uniform(0.9, 2.0, (kind == 1).sum())
    conc[kind == 2] = rng.uniform(0.3, 1.2, ((kind == 2).sum(), 2))
    od = conc @ stains.T
    return np.clip(np.rint(256.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8).reshape(size, size, 3)


STAINS_A = npo.finish_pair(np.array([0.55, 0.78, 0.30]), np.array([0.20, 0.85, 0.49]))
STAINS_B = npo.finish_pair(np.array([0.70, 0.66, 0.27]), np.array([0.30, 0.80, 0.52]))


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=1, dashboard=False) as c:
        yield c


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stain_targets")
    paths = {"a": root / "target_a.png", "b": root / "target_b.png", "white": root / "white.png",
             "junk": root / "junk.png"}
    Image.fromarray(_he_image(STAINS_A, 0)).save(paths["a"])
    Image.fromarray(_he_image(STAINS_B, 1)).save(paths["b"])
    Image.fromarray(np.full((64, 64, 3), 247, np.uint8)).save(paths["white"])
    paths["junk"].write_bytes(b"not an image at all")
    return paths


def test_patches_are_normalised_once_fitted_and_recorded(client, tmp_path, tissue_slide, targets) -> None:
    path, _, _ = tissue_slide
    entries = [SlideEntry(slide_id="tissue", path=path)]
    plain_cfg = TileConfig(**BASE)
    cfg = TileConfig(**BASE, stain_normalize="macenko", stain_target=str(targets["a"]))
    assert tile_slides(entries, tmp_path / "plain", plain_cfg, client=client, progress=False)[0].status == "done"
    rows = tile_slides(entries, tmp_path / "norm", cfg, client=client, progress=False)
    assert rows[0].status == "done", rows

    plain, norm = PatchStore(tmp_path / "plain" / "tissue.zarr"), PatchStore(tmp_path / "norm" / "tissue.zarr")
    np.testing.assert_array_equal(norm.coords, plain.coords)
    raw, stored = plain.read(slice(None)), norm.read(slice(None))
    # each stored patch is exactly the fitted normaliser applied to the raw patch
    stain = norm.attrs["stain"]
    assert stain == fit_stain_target(cfg)
    assert stain["method"] == "macenko" and stain["target"] == str(targets["a"].resolve())
    assert len(stain["target_sha256"]) == 64
    fitted = normaliser_from_params(stain["params"])
    np.testing.assert_array_equal(stored, fitted.transform(raw))
    assert np.abs(stored.astype(int) - raw).mean() > 3.0
    # the target's stain matrix is what was fitted, and the stored patches now carry it
    assert np.allclose(stain["params"]["target"]["stain_matrix"], Macenko().fit(_he_image(STAINS_A, 0)).target.stain_matrix)
    s_raw, s_norm = Macenko().stain_matrix(raw).mean(0), Macenko().stain_matrix(stored).mean(0)
    ref = np.asarray(stain["params"]["target"]["stain_matrix"])
    assert np.abs(s_norm - ref).max() < 0.5 * np.abs(s_raw - ref).max()
    # QC scores describe the slide's own pixels
    np.testing.assert_array_equal(norm.qc("white_fraction"), plain.qc("white_fraction"))
    assert norm.attrs["config"]["stain_normalize"] == "macenko"
    assert "stain" not in plain.attrs and "stain_normalize" not in plain.attrs["config"]


def test_rerun_with_another_target_is_a_config_change(client, tmp_path, tissue_slide, targets) -> None:
    path, _, _ = tissue_slide
    entries = [SlideEntry(slide_id="tissue", path=path)]
    target = tmp_path / "target.png"
    target.write_bytes(targets["a"].read_bytes())
    cfg = TileConfig(**BASE, stain_normalize="vahadane", stain_target=str(target))
    assert tile_slides(entries, tmp_path / "o", cfg, client=client, progress=False)[0].status == "done"
    assert tile_slides(entries, tmp_path / "o", cfg, client=client, progress=False)[0].status == "skipped"
    other = TileConfig(**BASE, stain_normalize="vahadane", stain_target=str(targets["b"]))
    row = tile_slides(entries, tmp_path / "o", other, client=client, progress=False)[0]
    assert row.status == "failed" and "another configuration" in row.error and "--overwrite" in row.error
    method = TileConfig(**BASE, stain_normalize="reinhard", stain_target=str(target))
    row = tile_slides(entries, tmp_path / "o", method, client=client, progress=False)[0]
    assert row.status == "failed" and "another configuration" in row.error
    target.write_bytes(targets["b"].read_bytes())  # same path, other image
    row = tile_slides(entries, tmp_path / "o", cfg, client=client, progress=False)[0]
    assert row.status == "failed" and "stain normalisation or target image" in row.error
    row = tile_slides(entries, tmp_path / "o", cfg, client=client, progress=False, overwrite=True)[0]
    assert row.status == "done"
    assert PatchStore(tmp_path / "o" / "tissue.zarr").attrs["stain"]["target_sha256"] == fit_stain_target(cfg)["target_sha256"]


def test_bad_stain_settings_fail_before_any_slide(client, tmp_path, tissue_slide, targets) -> None:
    path, _, _ = tissue_slide
    entries = [SlideEntry(slide_id="tissue", path=path)]
    with pytest.raises(ConfigError, match="needs stain_target"):
        TileConfig(stain_normalize="macenko")
    with pytest.raises(ConfigError, match="stain_normalize='hed' is not allowed"):
        TileConfig(stain_normalize="hed", stain_target=str(targets["a"]))  # type: ignore[arg-type]
    cases = [("missing", tmp_path / "nope.png", "cannot be read"), ("junk", targets["junk"], "cannot be read"),
             ("white", targets["white"], "has 0 tissue pixels")]
    for _, target, message in cases:
        cfg = TileConfig(**BASE, stain_normalize="reinhard", stain_target=str(target))
        with pytest.raises(StainError, match=message) as info:
            tile_slides(entries, tmp_path / "o", cfg, client=client, progress=False)
        assert str(target) in str(info.value)
    assert not (tmp_path / "o" / "tissue.zarr").exists()
    res = CliRunner().invoke(main, ["tile", str(path), "--out", str(tmp_path / "cli"), "--workers", "1",
                                    "--no-progress", "--stain-normalize", "macenko",
                                    "--stain-target", str(targets["white"])])
    assert res.exit_code == 1 and str(targets["white"]) in res.output and "tissue pixels" in res.output
    res = CliRunner().invoke(main, ["tile", str(path), "--stain-normalize", "macenko", "--no-progress"])
    assert res.exit_code != 0 and "needs stain_target" in res.output


def test_cli_flag_normalises_the_store(tmp_path, tissue_slide, targets) -> None:
    path, _, _ = tissue_slide
    res = CliRunner().invoke(main, ["tile", str(path), "--out", str(tmp_path / "cli"), "--workers", "1",
                                    "--patch-px", "128", "--no-progress", "--stain-normalize", "reinhard",
                                    "--stain-target", str(targets["b"])])
    assert res.exit_code == 0, res.output
    attrs = PatchStore(tmp_path / "cli" / "tissue.zarr").attrs
    assert attrs["stain"]["method"] == "reinhard" and attrs["config"]["stain_target"] == str(targets["b"])
    assert len(attrs["stain"]["params"]["target"]["mean"]) == 3


def test_real_slide_takes_the_target_stains(client, tmp_path, data_dir: Path) -> None:
    slide = data_dir / "slides" / "CMU-1-Small-Region.svs"
    target = data_dir / "images" / "tiatoolbox_target_image.png"
    entries = [SlideEntry(slide_id="cmu", path=slide)]
    # zstd: JPEG's chroma subsampling blurs the colours of small nuclei into the stroma, which
    # moves any later stain estimate by several degrees whether or not the patches were normalised
    base = {"mpp": 2.0, "patch_px": 64, "patches_per_shard": 16, "min_tissue_fraction": 0.8, "codec": "zstd"}
    cfg = TileConfig(**base, stain_normalize="macenko", stain_target=str(target))
    rows = tile_slides(entries, tmp_path / "plain", TileConfig(**base), client=client, progress=False)
    rows += tile_slides(entries, tmp_path / "norm", cfg, client=client, progress=False)
    assert [r.status for r in rows] == ["done", "done"], rows
    raw = PatchStore(tmp_path / "plain" / "cmu.zarr").read(slice(None))
    norm_store = PatchStore(tmp_path / "norm" / "cmu.zarr")
    stored = norm_store.read(slice(None))
    assert len(stored) == len(raw) >= 10
    ref = np.asarray(norm_store.attrs["stain"]["params"]["target"]["stain_matrix"])
    assert norm_store.attrs["stain"]["target"] == str(target.resolve())

    def angle(patches: np.ndarray) -> float:  # pooled over all patches
        s = np.asarray(Macenko().fit(patches).target.stain_matrix)  # type: ignore[union-attr]
        return float(np.degrees(np.arccos(np.clip((s * ref).sum(axis=0), -1.0, 1.0))).max())

    # the skin H&E of CMU-1 takes the tiatoolbox target's stains (measured: 9.0 -> 0.4 degrees)
    before, after = angle(raw), angle(stored)
    assert before > 5.0 and after < 2.0, (before, after)
