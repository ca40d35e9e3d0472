"""Which slides train-latent trains on: a spatial hold-out replaces the slide-level val split."""

from __future__ import annotations

from pathlib import Path

from _tiny import make_tiny_store

from pathgan.config import TrainConfig
from pathgan.stages.train import training_splits


def _two_unassigned(root: Path) -> list[Path]:
    """The shared data's case: two slides, no manifest split."""
    return [make_tiny_store(root / "a.zarr", 16, 1), make_tiny_store(root / "b.zarr", 16, 2)]


def test_without_holdout_val_fraction_holds_out_an_unassigned_slide(tmp_path: Path) -> None:
    out = training_splits(_two_unassigned(tmp_path), TrainConfig(val_fraction=0.2))
    assert len(out["train"]) == len(out["val"]) == 1  # one whole slide is held out
    assert {p.stem for p in out["train"] + out["val"]} == {"a", "b"}


def test_spatial_holdout_trains_on_every_unassigned_slide(tmp_path: Path) -> None:
    stores = _two_unassigned(tmp_path)
    out = training_splits(stores, TrainConfig(val_fraction=0.2, holdout_block_um=384))
    assert [p.stem for p in out["train"]] == ["a", "b"] and out["val"] == []
    # the manifest's split still holds a slide out whole
    out = training_splits([*stores, make_tiny_store(tmp_path / "c.zarr", 16, 3, "val")],
                          TrainConfig(val_fraction=0.2, holdout_block_um=384))
    assert [p.stem for p in out["train"]] == ["a", "b"] and [p.stem for p in out["val"]] == ["c"]
