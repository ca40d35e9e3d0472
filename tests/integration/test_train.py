"""train-latent end to end on tiny stores: resume exactness, NaN stop, checkpoints, CLI, DDP (gloo)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY, make_tiny_store, register_tiny
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.config import TrainConfig
from pathgan.models import get_config
from pathgan.runs import latest_checkpoint
from pathgan.train import load_checkpoint

pytestmark = pytest.mark.slow  # every test here trains a network or starts a Dask cluster


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    register_tiny()
    root = tmp_path_factory.mktemp("stores")
    make_tiny_store(root / "a.zarr", 48, 1, "train")
    make_tiny_store(root / "b.zarr", 48, 2, "train")
    make_tiny_store(root / "c.zarr", 32, 3, "val")
    return root


def _cfg(**kw) -> TrainConfig:
    base = dict(model=TINY, batch_size=8, n_critic=2, steps=4, sample_every=100, checkpoint_every=100,
                log_every=1, n_samples=4, seed=3, min_tissue_fraction=0.0, max_white_fraction=1.0)
    return TrainConfig(**{**base, **kw})


def _state(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir))  # type: ignore[arg-type]


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resume_is_exact(stores: Path, tmp_path: Path) -> None:
    from pathgan.stages.train import train_latent

    straight = train_latent([stores], _cfg(steps=4), runs_root=tmp_path / "r1", device="cpu", progress=False)
    half = train_latent([stores], _cfg(steps=2), runs_root=tmp_path / "r2", device="cpu", progress=False)
    assert _state(half)["step"] == 2
    resumed = train_latent([stores], _cfg(), runs_root=tmp_path / "r2", device="cpu", progress=False,
                           resume=half, steps_override=4)
    assert resumed == half
    a, b = _state(straight), _state(resumed)
    assert a["step"] == b["step"] == 4
    for key in ("models", "ema", "opt_g", "opt_d", "rng", "epoch", "position"):
        _assert_same(a[key], b[key], key)
    # the logged history is the same too (the resumed run continues stats.jsonl)
    rows_a = [json.loads(x) for x in (straight / "stats.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (resumed / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["loss_d"] == rb["loss_d"] and ra.get("loss_g") == rb.get("loss_g")


def test_checkpoint_contents_and_provenance(stores: Path, tmp_path: Path) -> None:
    from pathgan.stages.train import train_latent

    run = train_latent([stores], _cfg(steps=2, sample_every=1), runs_root=tmp_path, device="cpu", progress=False)
    ck = torch.load(latest_checkpoint(run), weights_only=True)  # safe loading works
    prov = ck["provenance"]
    assert prov["store_schema"] == 1 and prov["patch_mpp"] == 1.0 and prov["image_px"] == 28
    assert len(prov["data_fingerprint"]) == 64 and prov["pathgan_version"]
    assert prov["train_slides"] == ["a", "b"] and prov["val_slides"] == ["c"]  # manifest split honoured
    assert ck["config"]["train"]["model"] == TINY and ck["config"]["model"]["image_px"] == 28
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000000.png", "step-0000001.png",
                                                                   "step-0000002.png"]
    from PIL import Image

    assert Image.open(run / "samples" / "step-0000002.png").size == (2 * 28 + 3 * 2,) * 2  # 2x2 grid of 28 px
    assert (run / "config.yaml").is_file() and not list(run.rglob("*.partial*"))


def _grid_cells(path: Path, px: int = 28, pad: int = 2) -> np.ndarray:
    from PIL import Image

    grid = np.asarray(Image.open(path), dtype=float) / 255
    n = (grid.shape[0] - pad) // (px + pad)
    return np.stack([grid[pad + r * (px + pad) : pad + r * (px + pad) + px, pad + c * (px + pad) : pad + c * (px + pad) + px]
                     for r in range(n) for c in range(n)])


def test_short_run_learns_the_data_colour(stores: Path, tmp_path: Path) -> None:
    """Losses move, and the generator's colour moves from sigmoid's 0.5 grey to the data's."""
    from pathgan.stages.train import train_latent

    cfg = _cfg(steps=40, n_critic=1, lr_d=2e-3, lr_g=2e-3, ema_decay=0.0, diffaugment="", sample_every=40)
    run = train_latent([stores], cfg, runs_root=tmp_path, device="cpu", progress=False)
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    d = np.array([r["loss_d"] for r in rows])
    g = np.array([r["loss_g"] for r in rows])
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(g))
    assert d.std() > 1e-3 and g.std() > 1e-3
    assert all(r["d_img_per_s"] > 0 and r["grad_norm_d"] > 0 for r in rows)
    real_mean = np.clip(np.random.default_rng(1).normal(170, 40, 10_000), 0, 255).mean() / 255  # as make_tiny_store
    before = _grid_cells(run / "samples" / "step-0000000.png").mean()
    after = _grid_cells(run / "samples" / "step-0000040.png").mean()
    assert abs(after - real_mean) < 0.5 * abs(before - real_mean)


def test_nan_stops_and_keeps_last_good_checkpoint(stores: Path, tmp_path: Path, monkeypatch) -> None:
    from pathgan.data import PatchDataset
    from pathgan.stages.train import train_latent
    from pathgan.train import TrainingDivergedError

    original = PatchDataset.get_batch
    calls = {"n": 0}

    def poisoned(self, indices, *, epoch=None):
        calls["n"] += 1
        out = original(self, indices, epoch=epoch)
        if calls["n"] == 4:  # the 4th batch (step 3) is NaN
            out["image"] = out["image"] * float("nan")
        return out

    monkeypatch.setattr(PatchDataset, "get_batch", poisoned)
    with pytest.raises(TrainingDivergedError, match="discriminator loss became nan at step 3"):
        train_latent([stores], _cfg(steps=6, checkpoint_every=2), runs_root=tmp_path, device="cpu", progress=False)
    run = next(tmp_path.iterdir())
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-0000002.pt"]
    assert _state(run)["step"] == 2


def test_cli_dry_run_and_errors(stores: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["train-latent", "--stores", str(stores), "--set", f"model={TINY}",
                               "--set", "batch_size=4", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "batch_size: 4" in res.output and "image_px: 28" in res.output
    res = runner.invoke(main, ["train-latent", "--stores", str(stores), "--set", "colour=red", "--dry-run"])
    assert res.exit_code != 0 and "--set colour: not a TrainConfig field; allowed: " in res.output
    res = runner.invoke(main, ["train-latent", "--stores", str(stores), "--set", "model=nope", "--dry-run"])
    assert res.exit_code != 0 and "nope" in res.output and "pathologygan-224" in res.output
    res = runner.invoke(main, ["train-latent", "--stores", str(tmp_path / "none"), "--set", f"model={TINY}"])
    assert res.exit_code != 0 and "does not exist" in res.output
    res = runner.invoke(main, ["train-latent", "--stores", str(stores), "--set", f"model={TINY}", "--set", "steps=2",
                               "--set", "batch_size=8", "--set", "min_tissue_fraction=0", "--out", str(tmp_path / "r"),
                               "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "run directory:" in res.output and latest_checkpoint(next((tmp_path / "r").iterdir())) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, stores: str, runs: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    register_tiny()
    import torch.distributed as dist

    from pathgan.stages.train import train_latent
    from pathgan.train import Trainer

    run_original = Trainer.run

    def run_and_dump(self, steps=None):  # every rank reports the weights it ends with
        result = run_original(self, steps)
        torch.save({k: v.clone() for k, v in self.model.state_dict().items()}, Path(out) / f"rank{rank}.pt")
        return result

    Trainer.run = run_and_dump  # type: ignore[method-assign]
    train_latent([Path(stores)], _cfg(steps=3), runs_root=Path(runs), device="cpu", progress=False)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gloo_two_processes(stores: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(stores), str(tmp_path / "runs"), str(tmp_path)), nprocs=2)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # rank 0 made the run directory, rank 1 used it
    assert load_checkpoint(latest_checkpoint(runs[0]))["step"] == 3
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    # Ranks saw different half-batches and noise, yet end with identical weights: the initial
    # broadcast and the gradient all-reduce work. The weights did move from their initial values.
    _assert_same(w0, w1, "rank0 vs rank1")
    torch.manual_seed(3)
    from pathgan.models import build

    init = build(get_config(TINY)).state_dict()
    assert any(not torch.equal(init[k], w0[k]) for k in init if k.endswith("weight") or "original" in k)


def test_evaluate_cli_on_held_out_slide(stores: Path, tmp_path: Path) -> None:
    from pathgan.stages.train import train_latent

    run = train_latent([stores], _cfg(steps=2), runs_root=tmp_path, device="cpu", progress=False)
    # no --stores: the run's own recorded stores; --progress: a bar over the feature extraction
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--n", "24", "--extractor", "random", "--progress"])
    assert res.exit_code == 0, res.output
    assert "real-vs-real floor" in res.output and "real = val slides" in res.output
    assert f"evaluate {run.name}: random features" in res.stderr and "48/48" in res.stderr, res.stderr
    out = json.loads(next(run.glob("eval-step-0000002-random-n24.json")).read_text())
    assert out["real_slides"] == ["c"] and out["n_fake"] == 24 and out["n_real"] == 24
    assert out["kid_subset_size"] == 12 and out["kid_std"] > 0  # subsets differ, so the spread is real
    assert np.isfinite([out["fid"], out["kid_mean"], out["precision"], out["recall"]]).all()
    # an untrained tiny generator is far from the data: worse than two halves of the real set
    assert out["fid_matched"] > out["fid_floor"]
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--stores", str(stores), "--extractor", "inception",
                                    "--weights", str(tmp_path / "missing.pt")])
    assert res.exit_code != 0 and "does not exist" in res.output
    # the old spelling (positional RUN_DIR, --stores given) gives the same numbers, with one deprecation line
    old = CliRunner().invoke(main, ["evaluate", str(run), "--stores", str(stores), "--n", "24", "--extractor", "random",
                                    "--out", str(tmp_path / "old"), "--no-progress"])
    assert old.exit_code == 0, old.output
    assert old.stderr.splitlines() == ["pathgan: positional RUN_DIR is deprecated; use --run RUN_DIR (removed in 0.3)"]
    again = json.loads((tmp_path / "old" / "eval-step-0000002-random-n24.json").read_text())
    assert again["fid"] == out["fid"] and again["kid_mean"] == out["kid_mean"]


def test_evaluate_with_too_few_held_out_patches_says_so_in_one_line(tmp_path: Path) -> None:
    from pathgan.stages.train import train_latent

    register_tiny()
    make_tiny_store(tmp_path / "s" / "a.zarr", 24, 1, "train")
    make_tiny_store(tmp_path / "s" / "v.zarr", 3, 2, "val")
    run = train_latent([tmp_path / "s"], _cfg(steps=1), runs_root=tmp_path / "runs", device="cpu", progress=False)
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--extractor", "random", "--no-progress"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    (line,) = res.output.strip().splitlines()
    assert line.startswith("Error: only 3 held-out real patch(es) (val split: v.zarr); evaluate needs at least 4: ")


def test_dataloader_workers_do_not_change_training(stores: Path, tmp_path: Path) -> None:
    """cfg.num_workers reads batches in worker processes; the run must be the same as in-process."""
    from pathgan.stages.train import train_latent

    a = train_latent([stores], _cfg(steps=3, num_workers=0), runs_root=tmp_path / "a", device="cpu", progress=False)
    b = train_latent([stores], _cfg(steps=3, num_workers=2), runs_root=tmp_path / "b", device="cpu", progress=False)
    _assert_same(_state(a)["models"], _state(b)["models"], "models")


def test_time_budget_stops_with_checkpoint_and_samples(stores: Path, tmp_path: Path) -> None:
    """--minutes stops a run that could go on for a million steps, at a step boundary, with the
    last step's checkpoint and sample grid; the logged training time has passed the budget."""
    result = CliRunner().invoke(main, ["train-latent", "--stores", str(stores), "--out", str(tmp_path), "--device", "cpu",
                                       "--no-progress", "--minutes", "0.03", "--set", f"model={TINY}", "--set", "batch_size=8",
                                       "--set", "steps=1000000", "--set", "min_tissue_fraction=0", "--set",
                                       "max_white_fraction=1", "--set", "checkpoint_every=1000000", "--set",
                                       "sample_every=1000000", "--set", "log_every=1000000"])
    assert result.exit_code == 0, result.output
    run = next(tmp_path.iterdir())
    ck = _state(run)
    assert 1 <= ck["step"] < 1_000_000
    assert ck["config"]["train"]["time_budget_min"] == pytest.approx(0.03)
    assert (run / "samples" / f"step-{ck['step']:07d}.png").is_file()
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == ck["step"] and rows[-1]["train_min"] >= 0.03
    bad = CliRunner().invoke(main, ["train-latent", "--stores", str(stores), "--minutes", "0", "--dry-run"])
    assert bad.exit_code != 0 and "--minutes" in bad.output


def test_second_resume_of_a_running_run_is_refused(stores: Path, tmp_path: Path) -> None:
    """Two train-latent --resume on one run would write checkpoints over each other: the second is
    refused with the owner's pid while the first holds the run; after the owner is killed, it resumes."""
    import subprocess
    import sys

    from pathgan.stages.train import train_latent

    run = train_latent([stores], _cfg(steps=2, checkpoint_every=2), runs_root=tmp_path, device="cpu", progress=False)
    hold = ("import sys, time; from pathlib import Path; from pathgan._lock import folder_lock\n"
            "with folder_lock(Path(sys.argv[1]), 'train-latent'):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        args = ["train-latent", "--resume", str(run), "--set", "steps=4", "--device", "cpu",
                "--no-progress"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code != 0
        assert f"in use by another pathgan train-latent: pid {proc.pid}" in res.output, res.output
        assert "Traceback" not in res.output
        assert _state(run)["step"] == 2  # nothing was written
    finally:
        proc.kill()
        proc.wait()
    res = CliRunner().invoke(main, args)  # the owner died with kill -9: its lock is stale and recovered
    assert res.exit_code == 0, res.output
    assert _state(run)["step"] == 4
    assert not (run / ".pathgan.lock").exists()
