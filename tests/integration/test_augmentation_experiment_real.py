"""The augmentation experiment end to end on the real CMU slide, with a few steps of everything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pipelines" / "augmentation_experiment"))

import experiment as X

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pipeline_on_the_real_slide(real_stores_64: list[Path], tmp_path: Path) -> None:
    from pathgan.latents import nuclei_density
    from pathgan.store import PatchStore

    store_path = next(p for p in real_stores_64 if p.stem.startswith("CMU"))
    # real_stores_64 is at 1 um/px; small blocks keep both regions populated on this small slide.
    cfg = X.ExperimentConfig(n_per_class=(8,), seeds=(0, 1), gan_steps=2, cnn_steps=15, cnn_batch=8, block_px=512,
                             gan_config="pathologygan-56-cpu",
                             extra_gan_settings={"batch_size": 8, "n_samples": 4})
    result = X.run_experiment(store_path, tmp_path / "exp", cfg, progress=False)
    saved = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(result["summary"]))
    assert {(r["arm"], r["seed"]) for r in result["rows"]} == {(a, s) for a in ("real", "real+synthetic") for s in (0, 1)}
    assert all(r["n_real"] == 16 and r["n_synthetic"] == (16 if r["arm"] != "real" else 0) for r in result["rows"])
    # The GAN's label CSV lists 8 patches per class, all from the training squares, and no test
    # patch shares a level-0 pixel with any of them (checked from the coords, not the regions).
    store = PatchStore(store_path)
    coords = np.asarray(store.coords)
    dens = nuclei_density(store.read(np.arange(len(store))))
    rows = (tmp_path / "exp" / "labels-n8.csv").read_text().splitlines()[1:]
    xy = np.array([[int(v) for v in r.split(",")[1:3]] for r in rows])
    labels = [r.split(",")[3] for r in rows]
    assert sorted(labels) == ["dense"] * 8 + ["sparse"] * 8
    med = np.median(dens)
    where = {tuple(c): i for i, c in enumerate(coords)}
    for (x, y), lab in zip(xy, labels, strict=True):
        d = dens[where[(x, y)]]
        assert (d >= med) if lab == "dense" else (d <= med)
    f = float(store.attrs["footprint0"][0])
    region = X.checkerboard_regions(coords, f, cfg.block_px)
    test_xy = coords[region == 1]
    assert len(test_xy) == result["data"]["n_test"]  # at tail 0.5 every patch has a class
    overlap = (np.abs(xy[:, None, 0] - test_xy[None, :, 0]) < f) & (np.abs(xy[:, None, 1] - test_xy[None, :, 1]) < f)
    assert not overlap.any()
    assert (tmp_path / "exp" / "results.md").read_text().count("| 8 |") == 3
