"""benchmarks/bench_quality.py runs end to end in seconds on generated textures (so it cannot rot),
and its pieces that do not need a trained model are checked against hand-computed values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_quality as B  # noqa: E402

pytestmark = pytest.mark.slow  # trains both GANs of the benchmark for seconds


def test_holdout_check_catches_an_overlap() -> None:
    arrays = {"slide_ids": np.array(["s"]), "footprint0": np.array([[64.0, 64.0]]),
              "train_coords": np.array([[0, 0]]), "train_slide": np.array([0]),
              "test_coords": np.array([[63, 10]]), "test_slide": np.array([0])}
    with pytest.raises(AssertionError, match="overlaps"):
        B._check_holdout(arrays)
    arrays["test_coords"] = np.array([[64, 10]])  # touching, not overlapping
    B._check_holdout(arrays)


def test_checker_energy_sees_a_pixel_grid_and_blur() -> None:
    rng = np.random.default_rng(0)
    smooth = torch.from_numpy(rng.random((16, 3, 8, 8))).float()
    smooth = torch.nn.functional.interpolate(smooth, size=64, mode="bilinear", align_corners=False)
    grid = smooth + 0.2 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32)  # a 2-px checkerboard
    assert B.checker_energy(grid) > 20 * B.checker_energy(smooth)
    # a pure 2-px checkerboard has all its energy at the Nyquist frequency
    pure = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(32, 32).expand(4, 3, 64, 64)
    assert B.checker_energy(pure) == pytest.approx(1.0)


def test_bench_quality_runs_on_synthetic_data(tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("model: pathologygan-64-cpu\nbatch_size: 8\n")
    work = tmp_path / "work"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_quality.py"), "--synthetic", "--minutes", "0.04",
           "--marks", "0.02", "--n-fake", "64", "--extractor", "random", "--work", str(work), "--preset", str(preset),
           "--baseline", "batch_size=8", "--baseline", "g_channels=32,16,16,8,8", "--baseline", "d_channels=8,16,16,32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads((work / "results.json").read_text())
    runs = {(r["method"], r["minutes"]) for r in res["runs"]}
    assert runs == {("preset", 0.02), ("preset", 0.04), ("plain baseline (DCGAN)", 0.02),
                    ("plain baseline (DCGAN)", 0.04)}
    for r in res["runs"]:
        s = r["scores"]
        assert r["steps"] >= 1 and s["n_fake"] == 64
        assert all(np.isfinite(s[k]) for k in ("kid_x1e3", "fid", "precision", "recall", "spread", "checker"))
    refs = res["references"]
    # real training squares look like the test squares at high frequencies; a sigma-1 blur removes them
    assert 0.7 < refs["real train squares"]["checker"] < 1.3
    assert refs["real, Gaussian blur sigma 1 px"]["checker"] < 0.2
    for name in ("grid.png", "kid_curve.png", "results.md"):
        assert (work / name).stat().st_size > 0
    assert "| preset (seed 0) | 0.04 |" in (work / "results.md").read_text()


def test_score_model_scores_a_finished_model_and_refuses_a_different_holdout(tmp_path: Path) -> None:
    import argparse

    import yaml
    from _export_run import make_untrained_run

    run = make_untrained_run(tmp_path / "runs")
    work = tmp_path / "work"
    args = argparse.Namespace(score_model=str(run), block_um=384.0, synthetic=True, n_fake=64, extractor="random",
                              work=work)
    # trained without the checkerboard holdout: its training patches may be the test squares
    with pytest.raises(SystemExit, match=r"holdout_block_um=0, but the test squares here are --block-um 384"):
        B.score_model(args)
    assert not work.exists() or not list(work.glob("model-*.json"))

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["holdout_block_um"] = 384.0
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert B.score_model(args) == 0
    out = json.loads((work / f"model-{run.name}.json").read_text())
    s = out["scores"]
    assert out["sample_seed"] == B.SAMPLE_SEED and out["checkpoint"].startswith("step-")
    assert s["n_fake"] == 64 and s["n_real"] == out["n_test"] > 0
    assert all(np.isfinite(s[k]) for k in ("kid_x1e3", "fid", "precision", "recall", "spread", "checker"))
    # the same latents: scoring again gives the same numbers
    assert B.score_model(args) == 0
    again = json.loads((work / f"model-{run.name}.json").read_text())["scores"]
    assert again["kid_x1e3"] == s["kid_x1e3"] and again["fid"] == s["fid"]
    assert (work / f"model-{run.name}.png").stat().st_size > 0
