"""Shared fixtures: synthetic slides for unit tests, the real data folder for integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _synth import paint_tissue, write_svs

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "slides").is_dir():
        pytest.skip(f"real data not found at {DATA} (set PATHGAN_DATA to the shared data folder)")
    return DATA


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def tissue_slide(synth_dir: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 3072x2048 slide at 0.25 um/px with two tissue blobs; returns (path, level0 RGB, truth)."""
    img, truth = paint_tissue(3072, 2048, [(0.3, 0.45, 0.16), (0.72, 0.55, 0.13)], seed=1)
    return write_svs(synth_dir / "tissue.svs", img, mpp=0.25, downsamples=(4,)), img, truth


@pytest.fixture(scope="session")
def blank_slide(synth_dir: Path) -> Path:
    img, _ = paint_tissue(1024, 1024, [], seed=2)
    return write_svs(synth_dir / "blank.svs", img, mpp=0.25, downsamples=())


@pytest.fixture(scope="session")
def nompp_slide(synth_dir: Path) -> Path:
    img, _ = paint_tissue(1024, 1024, [(0.5, 0.5, 0.3)], seed=3)
    return write_svs(synth_dir / "nompp.svs", img, mpp=None, downsamples=())


@pytest.fixture(scope="session")
def corrupt_slide(synth_dir: Path) -> Path:
    path = synth_dir / "corrupt.svs"
    path.write_bytes(b"II*\x00" + os.urandom(2000))
    return path
