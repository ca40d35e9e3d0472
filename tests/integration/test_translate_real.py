"""train-translate and translate through the CLI on the two real slides (CMU-1 skin as domain A,
the TCGA frozen head-and-neck section as domain B), tiled once per session at 1 um/px into 64-px
patches (``real_stores_64``). A 30-step tiny CycleGAN checks the machinery on real tiles, not
translation quality."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # tiles and trains a CycleGAN

TINY = {"patch_px": 64, "ngf": 8, "g_res_blocks": 2, "ndf": 8, "d_layers": 2, "batch_size": 2, "steps": 30,
        "sample_every": 15, "checkpoint_every": 15, "log_every": 5, "n_samples": 4, "n_eval": 64}


def _domain(stores: list[Path], prefix: str) -> Path:
    found = [p for p in stores if p.name.startswith(prefix)]
    assert len(found) == 1, stores
    return found[0]


def test_train_translate_and_translate_real(real_stores_64: list[Path], tmp_path: Path) -> None:
    a, b = _domain(real_stores_64, "CMU-1"), _domain(real_stores_64, "TCGA")
    cfg = tmp_path / "tiny-real.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    runner = CliRunner()
    res = runner.invoke(main, ["train-translate", "--stores-a", str(a), "--stores-b", str(b), "--config", str(cfg),
                               "--out", str(tmp_path / "runs"), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "00000-tiny-real"
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["step-0000015.pt", "step-0000030.pt"]
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert all(math.isfinite(r["loss_g"]) and math.isfinite(r["loss_d_a"]) for r in rows)

    ev = json.loads((run / "eval.json").read_text())
    for direction in ("a2b", "b2a"):
        metrics = ev[direction]
        assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), metrics
        assert "macenko_note" not in metrics, metrics
        assert metrics["ssim_h_identity"] == pytest.approx(1.0)
        # The two slides differ in stain far more than two halves of one slide do: the metric can
        # see the domain gap that translation is meant to close.
        assert metrics["hist_w1_before"] > 2 * metrics["hist_w1_floor"], metrics
        assert metrics["hed_mean_before"] > 2 * metrics["hed_mean_floor"], metrics
        assert metrics["macenko_angle_before"] > 2 * metrics["macenko_angle_floor"], metrics

    out = tmp_path / "translated"
    res = runner.invoke(main, ["translate", "--run", str(run), "--stores", str(a), "--out", str(out), "--eval", "--n-eval", "64",
                               "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    src, dst = PatchStore(a), PatchStore(out / a.name)
    assert len(dst) == len(src) and np.array_equal(dst.coords, src.coords)
    assert dst.attrs["translation"]["direction"] == "a2b" and dst.attrs["translation"]["step"] == 30
    assert dst.slide_id == src.slide_id and dst.mpp == src.mpp
    ev_t = json.loads((out / "eval.json").read_text())
    assert ev_t["targets"] == [str(b.resolve())] and ev_t["n_source"] == 64
    assert all(math.isfinite(v) for v in ev_t.values() if isinstance(v, float)), ev_t

    # bad input: a clear error naming the path
    res = runner.invoke(main, ["translate", "--run", str(run), "--stores", str(tmp_path / "nope.zarr"), "--out", str(out)])
    assert res.exit_code == 1 and "nope.zarr: does not exist" in res.output
