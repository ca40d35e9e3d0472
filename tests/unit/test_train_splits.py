"""Which slides train-latent trains on: a spatial hold-out replaces the slide-level val split."""

from __future__ import annotations

from pathlib import Path

from _tiny import make_tiny_store

from pathgan.config import TrainConfig
from pathgan.stages.train import training_splits


def _stores(root: Path) -> list[Path]:
    return [make_tiny_store(root / "a.zarr", 16, 1), make_tiny_store(root / "b.zarr", 16, 2),
            make_tiny_store(root / "c.zarr", 16, 3, "val")]


def test_without_holdout_val_fraction_holds_out_an_unassigned_slide(tmp_path: Path) -> None:
    # the shared data's case: two slides, no manifest split, the default val_fraction
    two = _stores(tmp_path)[:2]
    out = training_splits(two, TrainConfig(val_fraction=0.2))
    assert len(out["train"]) == len(out["val"]) == 1  # one whole slide is held out
    assert {p.stem for p in out["train"] + out["val"]} == {"a", "b"}
    both = training_splits(two, TrainConfig(val_fraction=0.2, holdout_block_um=384))
    assert [p.stem for p in both["train"]] == ["a", "b"] and both["val"] == []


def test_spatial_holdout_trains_on_every_unassigned_slide(tmp_path: Path) -> None:
    out = training_splits(_stores(tmp_path), TrainConfig(val_fraction=0.2, holdout_block_um=384))
    assert [p.stem for p in out["train"]] == ["a", "b"]
    assert [p.stem for p in out["val"]] == ["c"]  # the manifest's split still wins
