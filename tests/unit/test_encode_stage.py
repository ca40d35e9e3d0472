"""pathgan encode: row alignment, resumption after a crash, skip rules, failures, the CLI."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _tiny import make_coded_store
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.errors import ConfigError, StoreError
from pathgan.stages.encode import encode_stores
from pathgan.store import (
    PatchStore,
    latents_attrs,
    read_latents,
    read_store_attrs,
)

W = 4
N = 10


def make_store(path: Path, n: int = N, px: int = 16, per_shard: int = 4) -> Path:
    """See ``_tiny.make_coded_store``; the white corner is outside the centre crop: the fake latent must ignore it."""
    return make_coded_store(path, n, px, per_shard, mark_corner=True)


def fake_latent(patch: np.ndarray, refine_steps: int = 0) -> np.ndarray:
    """Per-channel mean of the centre 8x8 crop of one uint8 [P, P, 3] patch, then 7 + refine_steps."""
    c = patch.shape[0] // 2
    mean = patch[c - 4 : c + 4, c - 4 : c + 4].astype(np.float64).mean(axis=(0, 1))
    return np.array([*mean, 7.0 + refine_steps], np.float32)


class FakeModel:
    """Duck-typed LatentModel: records every batch it sees; can crash after ``fail_after`` calls."""

    w_dim = W

    def __init__(self, *, ckpt: str = "c" * 64, run_id: str = "00001-fake", fail_after: int | None = None,
                 out: Any = None) -> None:
        self.run_id, self.ckpt, self.fail_after, self.out = run_id, ckpt, fail_after, out
        self.calls: list[np.ndarray] = []

    def provenance(self) -> dict[str, Any]:
        return {"checkpoint_sha256": self.ckpt, "encoder_sha256": "e" * 64, "run_dir": "/runs/fake", "image_px": 8}

    def encode_store_batch(self, patches: np.ndarray, refine_steps: int = 0) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated crash")
        assert patches.dtype == np.uint8 and patches.ndim == 4
        self.calls.append(patches.copy())
        if self.out is not None:
            return np.asarray(self.out(patches))
        centre = patches[:, 4:12, 4:12].astype(np.float32).mean(axis=(1, 2))  # [B, 3]
        return np.concatenate([centre, np.full((len(patches), 1), 7.0 + refine_steps, np.float32)], axis=1)

    @property
    def rows_seen(self) -> int:
        return sum(len(c) for c in self.calls)


def _encode(model: FakeModel, stores: list[Path], **kw: Any) -> list[dict[str, Any]]:
    kw = {"batch_size": 3, "rows_per_chunk": 4, "progress": False, **kw}
    return encode_stores(model, stores, **kw)


def test_latents_are_row_aligned_with_coords(tmp_path: Path) -> None:
    path = make_store(tmp_path / "a.zarr")
    rows = _encode(FakeModel(), [path])  # batches of 3 inside chunks of 4: spans cross no chunk
    assert [(r.status, r.n_patches, r.error) for r in rows] == [("encoded", N, "")]
    store = PatchStore(path)
    latents = store.latents("00001-fake")
    assert latents.shape == (N, W) and latents.dtype == np.float32
    expected = np.stack([fake_latent(store.read([i])[0]) for i in range(N)])  # one row at a time
    np.testing.assert_array_equal(latents, expected)
    # and the colours encode the coords the patch was cut at, so row i belongs to coords[i]
    np.testing.assert_array_equal(latents[:, :2], store.coords // 16)
    np.testing.assert_array_equal(latents[:, 2], np.arange(N))
    attrs = latents_attrs(path, "00001-fake")
    assert attrs["checkpoint_sha256"] == "c" * 64 and attrs["refine_steps"] == 0 and attrs["w_dim"] == W
    assert attrs["run_id"] == "00001-fake" and attrs["run_dir"] == "/runs/fake"
    assert read_store_attrs(path)["n_patches"] == N  # the root attrs still read as a complete store


def test_resume_after_crash_encodes_only_missing_rows(tmp_path: Path) -> None:
    crashed, clean = make_store(tmp_path / "crash.zarr"), make_store(tmp_path / "clean.zarr")
    _encode(FakeModel(), [clean], batch_size=2)
    # batches of 2 in chunks of 4: two calls fill chunk [0, 4), the third call crashes
    rows = _encode(FakeModel(fail_after=3), [crashed], batch_size=2)
    assert rows[0].status == "failed"
    assert "RuntimeError: simulated crash (4 of 10 rows kept; a rerun resumes)" in rows[0].error
    with pytest.raises(StoreError, match=r"incomplete: 4 of 10 rows done; rerun `pathgan encode`"):
        read_latents(crashed, "00001-fake")

    again = FakeModel()
    rows = _encode(again, [crashed], batch_size=2)
    assert rows[0].status == "encoded"
    assert again.rows_seen == N - 4  # nothing before the first unwritten chunk is encoded again
    np.testing.assert_array_equal(again.calls[0], PatchStore(crashed).read(slice(4, 6)))
    np.testing.assert_array_equal(read_latents(crashed, "00001-fake"), read_latents(clean, "00001-fake"))


def test_rerun_skips_unless_checkpoint_refine_or_overwrite_change(tmp_path: Path) -> None:
    path = make_store(tmp_path / "a.zarr")
    _encode(FakeModel(), [path])
    same = FakeModel()
    assert _encode(same, [path])[0].status == "skipped" and same.rows_seen == 0
    other = FakeModel(ckpt="d" * 64)
    assert _encode(other, [path])[0].status == "encoded" and other.rows_seen == N
    assert latents_attrs(path, "00001-fake")["checkpoint_sha256"] == "d" * 64
    forced = FakeModel(ckpt="d" * 64)
    assert _encode(forced, [path], overwrite=True)[0].status == "encoded" and forced.rows_seen == N
    refined = FakeModel(ckpt="d" * 64)
    assert _encode(refined, [path], refine_steps=5)[0].status == "encoded" and refined.rows_seen == N
    np.testing.assert_array_equal(read_latents(path, "00001-fake")[:, 3], np.full(N, 12.0, np.float32))
    assert latents_attrs(path, "00001-fake")["refine_steps"] == 5


def test_bad_paths_fail_alone(tmp_path: Path) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    good = [make_store(folder / "a.zarr"), make_store(folder / "b.zarr", n=5)]
    not_store = tmp_path / "junk.zarr"
    not_store.mkdir()
    (not_store / "zarr.json").write_text("{not json")
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    model = FakeModel()
    rows = _encode(model, [tmp_path / "missing.zarr", folder, not_store, empty_folder, good[0]])
    assert [(Path(r.store).name, r.status) for r in rows] == [
        ("missing.zarr", "failed"), ("a.zarr", "encoded"), ("b.zarr", "encoded"), ("junk.zarr", "failed"),
        ("nothing", "failed"),
    ]  # the folder expanded to its stores, and a.zarr given twice is encoded once
    assert rows[0].error.endswith("missing.zarr does not exist")
    assert "junk.zarr is not a pathgan patch store" in rows[3].error
    assert "no <slide_id>.zarr stores in this folder" in rows[4].error
    assert model.rows_seen == N + 5
    assert read_latents(good[1], "00001-fake").shape == (5, W)


def test_bad_model_output_fails_the_store_with_the_shape(tmp_path: Path) -> None:
    a, b = make_store(tmp_path / "a.zarr"), make_store(tmp_path / "b.zarr")
    rows = _encode(FakeModel(out=lambda p: np.zeros((len(p), W + 1), np.float32)), [a])
    assert rows[0].status == "failed"
    assert "returned float32 [3, 5] for 3 patches; expected float32 [3, 4]" in rows[0].error
    rows = _encode(FakeModel(out=lambda p: np.full((len(p), W), np.nan, np.float32)), [b])
    assert rows[0].status == "failed" and "contain NaN or inf, first at row 0" in rows[0].error


def test_invalid_arguments_raise(tmp_path: Path) -> None:
    path = make_store(tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        _encode(FakeModel(), [path], batch_size=0)
    with pytest.raises(ConfigError, match="refine_steps must be an integer >= 0, got -1"):
        _encode(FakeModel(), [path], refine_steps=-1)
    with pytest.raises(ConfigError, match="run id 'runs/x' is not allowed"):
        _encode(FakeModel(run_id="runs/x"), [path])


def test_cli_help() -> None:
    res = CliRunner().invoke(main, ["encode", "--help"])
    assert res.exit_code == 0, res.output
    assert "latents/<run_id>" in res.output and "pathgan encode --run runs/" in res.output
    assert "--refine-steps" in res.output and "--batch-size" in res.output


def test_cli_status_table_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command with a stand-in LatentModel: one good store, one missing -> table and exit 1."""
    good = make_store(tmp_path / "good.zarr")
    loaded: dict[str, Any] = {}

    class StandIn:
        @staticmethod
        def load(run_dir: Path, *, device: str, require_encoder: bool = False) -> FakeModel:
            loaded.update(run_dir=run_dir, device=device, require_encoder=require_encoder)
            return FakeModel()

    monkeypatch.setitem(sys.modules, "pathgan.latents", types.SimpleNamespace(LatentModel=StandIn))
    run = tmp_path / "run"
    run.mkdir()
    res = CliRunner().invoke(main, ["encode", "--run", str(run), "--device", "cpu", "--no-progress",
                                    "--stores", str(good), "--stores", str(tmp_path / "missing.zarr")])
    assert res.exit_code == 1, res.output
    assert "deprecated" not in res.output
    assert loaded == {"run_dir": run, "device": "cpu", "require_encoder": True}
    lines = res.output.splitlines()
    assert any(line.split()[:3] == ["good.zarr", "encoded", str(N)] for line in lines), res.output
    assert any(line.split()[:2] == ["missing.zarr", "failed"] for line in lines), res.output
    assert "latents/00001-fake in 1 of 2 store(s), 10 patches" in res.output
    assert read_latents(good, "00001-fake").shape == (N, W)
    # the old spelling (positional STORES) still works, with one deprecation line on stderr
    old = CliRunner().invoke(main, ["encode", "--run", str(run), "--device", "cpu", "--no-progress",
                                    str(good), str(tmp_path / "missing.zarr")])
    assert old.exit_code == 1, old.output
    assert old.stderr.splitlines()[0] == ("pathgan: positional STORES is deprecated; use --stores STORES "
                                          "(removed in 0.3)")
    assert sum("deprecated" in line for line in old.output.splitlines()) == 1
    assert "latents/00001-fake in 1 of 2 store(s), 10 patches" in old.output
    both = CliRunner().invoke(main, ["encode", "--run", str(run), "--stores", str(good), str(good)])
    assert both.exit_code == 2 and "give the stores once" in both.output


@pytest.mark.slow  # one training step of a tiny GAN makes the run directory: 2-5 s on CPU
def test_cli_run_without_encoder(tmp_path: Path) -> None:
    """A real run directory (1 training step of a tiny GAN) that has no encoder: exit 1, clear message."""
    import dataclasses

    from pathgan.config import TrainConfig
    from pathgan.models import get_config, list_configs, register
    from pathgan.stages.train import train_latent

    tiny = "test-tiny-28-encode"
    if tiny not in list_configs():
        register(dataclasses.replace(get_config("pathologygan-56-cpu"), name=tiny, image_px=28, z_dim=8, w_dim=8,
                                     mapping_blocks=1, g_channels=(8, 4), d_channels=(4, 8), dense_units=16,
                                     g_stem_channels=4, attention_px=14))
    good = make_store(tmp_path / "good.zarr", n=16, px=32)
    cfg = TrainConfig(model=tiny, batch_size=4, n_critic=1, steps=1, sample_every=100, checkpoint_every=100,
                      log_every=1, n_samples=4, seed=0, min_tissue_fraction=0.0, max_white_fraction=1.0,
                      val_fraction=0.0)
    run = train_latent([good], cfg, runs_root=tmp_path / "runs", device="cpu", progress=False)
    res = CliRunner().invoke(main, ["encode", "--run", str(run), "--device", "cpu", "--no-progress", "--stores", str(good)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert res.output.startswith("Error: ") and "has no trained encoder" in res.output, res.output
    assert run.name in res.output and "pathgan train-encoder --run" in res.output
    assert PatchStore(good).latent_runs() == {}  # nothing was written
