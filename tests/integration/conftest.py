"""A small latent model of the real slides, shared by the latent-space tests and the notebook test.

Built once per session (about two minutes on 2 cores): both real slides tiled at 1 um/px into
64-px patches, ``pathologygan-56-cpu`` trained briefly on them, an encoder fitted, every patch
encoded. It is a weak model (minutes of CPU); the tests built on it check the machinery and the
direction of effects, not image quality.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GAN_STEPS = int(os.environ.get("PATHGAN_TEST_GAN_STEPS", "250"))
ENCODER_STEPS = int(os.environ.get("PATHGAN_TEST_ENCODER_STEPS", "200"))


@dataclass(frozen=True)
class LatentRun:
    run_dir: Path
    stores: list[Path]

    @property
    def run_id(self) -> str:
        return self.run_dir.name


@pytest.fixture(scope="session")
def real_stores_64(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Both real slides tiled at 1 um/px into 64-px patches (a few seconds); sorted store paths.

    Shared by the session: tests that write into the stores (latents) must not depend on their
    absence, and tests that need pristine stores copy them."""
    from pathgan.config import TileConfig
    from pathgan.manifest import SlideEntry
    from pathgan.parallel import dask_client
    from pathgan.stages import tile_slides

    root = tmp_path_factory.mktemp("real_stores_64")
    entries = [
        SlideEntry(slide_id="CMU-1-Small-Region", path=data_dir / "slides" / "CMU-1-Small-Region.svs"),
        # The reduced TCGA slide carries no MPP; 0.5 um/px is what slides_manifest.csv states.
        SlideEntry(slide_id="TCGA-CR-7395", path=data_dir / "slides" / "TCGA-CR-7395-01A-01-TS1.svs",
                   mpp_override=0.5),
    ]
    with dask_client(n_workers=2, dashboard=False) as client:
        rows = tile_slides(entries, root / "stores", TileConfig(mpp=1.0, patch_px=64, stride_px=64),
                           client=client, progress=False)
    assert all(r.status == "done" for r in rows), rows
    return sorted((root / "stores").glob("*.zarr"))


@pytest.fixture(scope="session")
def real_latent_run(real_stores_64: list[Path], tmp_path_factory: pytest.TempPathFactory) -> LatentRun:
    import yaml

    from pathgan.config import EncoderConfig, TrainConfig, from_dict
    from pathgan.latents import LatentModel
    from pathgan.presets import preset_path
    from pathgan.stages.encode import encode_stores
    from pathgan.stages.train import train_latent
    from pathgan.stages.train_encoder import train_encoder

    root = tmp_path_factory.mktemp("latent_run")
    stores = real_stores_64

    preset = yaml.safe_load(preset_path("train", "pathologygan-56-cpu").read_text())
    cfg = from_dict(TrainConfig, {**preset, "steps": GAN_STEPS, "sample_every": GAN_STEPS,
                                  "checkpoint_every": GAN_STEPS, "val_fraction": 0.0, "seed": 1})
    run_dir = train_latent(stores, cfg, runs_root=root / "runs", device="cpu", progress=False)
    train_encoder(run_dir, EncoderConfig(steps=ENCODER_STEPS, batch_size=32, lr=5e-4, n_eval=64),
                  device="cpu", eval_refine_steps=0, progress=False)
    model = LatentModel.load(run_dir, require_encoder=True)
    status = encode_stores(model, stores, progress=False)
    assert all(r.status == "encoded" for r in status), status
    return LatentRun(run_dir=run_dir, stores=stores)
