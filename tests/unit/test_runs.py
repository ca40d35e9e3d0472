"""pathgan.runs.RunDir: the one place a run directory is created, opened and read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from pathgan.config import TrainConfig, TranslateConfig
from pathgan.errors import ConfigError, PathganError
from pathgan.models import get_config
from pathgan.runs import RunDir, file_sha256, latest_checkpoint


def _latent_run(root: Path, stores: list[Path]) -> RunDir:
    run = RunDir.create(root, "pathologygan-64-cpu")
    cfg, model = TrainConfig(model="pathologygan-64-cpu", batch_size=8), get_config("pathologygan-64-cpu")
    run.write_config({"train": asdict(cfg), "model": asdict(model), "data": {"patch_mpp": 1.0, "train_slides": ["a"]},
                      "stores": [str(p) for p in stores]})
    return run


def test_create_numbers_runs_after_the_highest_and_makes_the_layout(tmp_path: Path) -> None:
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "notes").mkdir()
    a, b = RunDir.create(tmp_path, "x"), RunDir.create(tmp_path, "y")
    assert (a.name, b.name) == ("00008-x", "00009-y")
    assert a.samples_dir.is_dir() and a.checkpoints_dir.is_dir()


def test_configs_round_trip_with_tuples(tmp_path: Path) -> None:
    run = _latent_run(tmp_path, [tmp_path / "s.zarr"])
    cfg, model = RunDir.open(run.path, "latent").train_configs()
    assert cfg.batch_size == 8
    assert model == get_config("pathologygan-64-cpu")  # tuples restored from YAML lists
    assert run.kind == "latent" and run.provenance["patch_mpp"] == 1.0
    assert run.stores() == [tmp_path / "s.zarr"]


def test_open_errors_name_the_folder_and_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(PathganError, match=r"run directory .*nope does not exist"):
        RunDir.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PathganError, match=r"empty is not a pathgan run directory \(no config.yaml\)"):
        RunDir.open(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("train: [unclosed\n")
    with pytest.raises(PathganError, match="is not valid YAML"):
        RunDir.open(bad)
    (bad / "config.yaml").write_text("- a list\n")
    with pytest.raises(PathganError, match="holds list, expected a mapping"):
        RunDir.open(bad)
    (bad / "config.yaml").write_text("foo: 1\n")
    with pytest.raises(PathganError, match=r"neither 'train' \+ 'model'.*found \['foo'\]"):
        RunDir.open(bad)
    latent = _latent_run(tmp_path / "runs", [])
    with pytest.raises(PathganError, match="is a train-latent run; this needs a train-translate run"):
        RunDir.open(latent.path, "translate")
    with pytest.raises(PathganError, match=r"has no checkpoint yet.*train it with pathgan train-latent first"):
        latent.require_checkpoint()


def test_translate_runs_keep_stores_per_domain(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "cyclegan")
    run.write_config({"translate": asdict(TranslateConfig()), "stores": {"a": ["/x/a.zarr"], "b": ["/x/b.zarr"]}})
    run = RunDir.open(run.path, "translate")
    assert run.translate_config() == TranslateConfig()
    assert run.stores("b") == [Path("/x/b.zarr")]
    with pytest.raises(PathganError, match="name the domain"):
        run.stores()
    with pytest.raises(PathganError, match="train-translate run; this needs a train-latent run"):
        run.train_configs()


def test_existing_stores_names_the_missing_ones(tmp_path: Path) -> None:
    here = tmp_path / "here.zarr"
    here.mkdir()
    run = _latent_run(tmp_path / "runs", [here, tmp_path / "gone.zarr"])
    with pytest.raises(ConfigError, match=r"not found \(\['.*gone.zarr'\]\); give the stores with --stores"):
        run.existing_stores()
    run.write_config({**run.config, "stores": [str(here)]})
    assert run.existing_stores() == [here]


def test_latest_checkpoint_is_the_highest_step_and_encoder_is_separate(tmp_path: Path) -> None:
    run = _latent_run(tmp_path, [])
    assert run.latest_checkpoint() is None and run.encoder_checkpoint() is None
    for step in (900, 10000, 1000):
        (run.checkpoints_dir / f"step-{step:07d}.pt").write_bytes(b"x")
    assert run.latest_checkpoint() == run.checkpoints_dir / "step-0010000.pt"
    assert [p.name for p in run.checkpoints()] == ["step-0000900.pt", "step-0001000.pt", "step-0010000.pt"]
    (run.encoder_dir / "checkpoints").mkdir(parents=True)
    (run.encoder_dir / "checkpoints" / "step-0000005.pt").write_bytes(b"e")
    assert run.encoder_checkpoint() == latest_checkpoint(run.encoder_dir)
    assert run.encoder_checkpoint().name == "step-0000005.pt"  # type: ignore[union-attr]


def test_file_sha256_matches_hashlib_and_notices_a_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "step-0000001.pt"
    f.write_bytes(b"a" * 5_000_000)
    assert file_sha256(f) == hashlib.sha256(b"a" * 5_000_000).hexdigest()
    assert (tmp_path / "step-0000001.pt.sha256").is_file()
    f.write_bytes(b"b" * 10)
    os.utime(f, ns=(1, 1))  # a rewrite changes size/mtime: the cache key no longer matches
    assert file_sha256(f) == hashlib.sha256(b"b" * 10).hexdigest()
    assert yaml.safe_load((tmp_path / "step-0000001.pt.sha256").read_text()).split()[1] == file_sha256(f)
