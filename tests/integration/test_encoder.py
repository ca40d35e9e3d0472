"""train-encoder and LatentModel on a tiny run: learning, exact resume, inversion, metrics, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY, make_tiny_store, register_tiny
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.config import EncoderConfig, TrainConfig
from pathgan.errors import ConfigError, PathganError, ShapeError
from pathgan.latents import LatentModel
from pathgan.models import Encoder, broadcast_w, build, get_config
from pathgan.train.encoder import EncoderTrainer, evaluate_encoder, invert

pytestmark = pytest.mark.slow  # every test here trains a network or starts a Dask cluster

ENC = dict(batch_size=16, lr=2e-3, log_every=5, checkpoint_every=1000, n_eval=32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step tiny run over two train stores and one validation store."""
    from pathgan.stages.train import train_latent

    register_tiny()
    root = tmp_path_factory.mktemp("enc")
    make_tiny_store(root / "stores" / "a.zarr", 48, 1, "train")
    make_tiny_store(root / "stores" / "c.zarr", 32, 3, "val")
    cfg = TrainConfig(model=TINY, batch_size=8, n_critic=1, steps=4, sample_every=100, checkpoint_every=100,
                      log_every=1, n_samples=4, seed=3, min_tissue_fraction=0.0, max_white_fraction=1.0)
    return train_latent([root / "stores"], cfg, runs_root=root / "runs", device="cpu", progress=False)


def _frozen_model() -> object:
    register_tiny()
    torch.manual_seed(0)
    return build(get_config(TINY)).eval().requires_grad_(False)


def test_encoder_learns_w_of_generated_images(tmp_path: Path) -> None:
    m = _frozen_model()
    enc = Encoder(get_config(TINY))
    before = evaluate_encoder(m.mapping, m.generator, enc, n=128)
    EncoderTrainer(EncoderConfig(steps=60, **ENC), mapping=m.mapping, generator=m.generator, encoder=enc,
                   out_dir=tmp_path, device=torch.device("cpu"), progress=False).run()
    after = evaluate_encoder(m.mapping, m.generator, enc, n=128)
    # An untrained encoder (output w_mean + noise) scores r2 <= 0; 60 steps explain most of w's variance.
    assert before["w_r2"] < 0.2
    assert after["w_r2"] > 0.5
    assert after["w_cosine"] > 0.8
    assert after["gen_recon_mse"] < before["gen_recon_mse"]


def test_mean_predictor_scores_r2_zero() -> None:
    """Independent check of the metric: always answering the mean w explains no variance (r2 ~ 0)."""
    m = _frozen_model()
    enc = Encoder(get_config(TINY))
    with torch.no_grad():
        for p in enc.out.parameters():
            p.zero_()
        w = m.mapping(torch.randn(4096, 8, generator=torch.Generator().manual_seed(9)))
        enc.w_mean.copy_(w.mean(0))
        enc.w_std.copy_(w.std(0))
    res = evaluate_encoder(m.mapping, m.generator, enc, n=512)
    assert abs(res["w_r2"]) < 0.15
    assert abs(res["w_cosine"]) < 0.1  # a constant prediction has no direction in common with w


def test_encoder_resume_is_exact(tmp_path: Path) -> None:
    m = _frozen_model()

    def fit(out: Path, steps: int, resume: bool) -> Encoder:
        torch.manual_seed(1)
        enc = Encoder(get_config(TINY))
        tr = EncoderTrainer(EncoderConfig(steps=steps, **{**ENC, "checkpoint_every": 3}), mapping=m.mapping,
                            generator=m.generator, encoder=enc, out_dir=out, device=torch.device("cpu"), progress=False)
        if resume:
            assert tr.resume()
        tr.run()
        return enc

    straight = fit(tmp_path / "a", 6, False)
    fit(tmp_path / "b", 3, False)
    resumed = fit(tmp_path / "b", 6, True)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    rows = [json.loads(x) for x in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 5, 6]  # the 3-step fit logged its end; the resume added 5, 6


def test_inversion_reduces_pixel_error() -> None:
    m = _frozen_model()
    g = torch.Generator().manual_seed(4)
    w_true = m.mapping(torch.randn(6, 8, generator=g))
    target = m.generator(broadcast_w(w_true, m.generator.n_slots), noise=False)
    w0 = w_true + 2.0 * torch.randn(6, 8, generator=g)

    def err(w: torch.Tensor) -> float:
        return float(((m.generator(broadcast_w(w, m.generator.n_slots), noise=False) - target) ** 2).mean())

    w1 = invert(m.generator, target, w0, steps=60, lr=0.05)
    assert err(w1) < 0.5 * err(w0)
    assert float((w1 - w_true).norm()) < float((w0 - w_true).norm())
    with pytest.raises(ConfigError, match="steps"):
        invert(m.generator, target, w0, steps=-1)


def test_train_encoder_stage_and_latent_model(run_dir: Path) -> None:
    from pathgan.stages.train_encoder import train_encoder

    with pytest.raises(PathganError, match="no trained encoder"):
        LatentModel.load(run_dir, require_encoder=True)
    out = train_encoder(run_dir, EncoderConfig(steps=30, **ENC), device="cpu", eval_refine_steps=5, progress=False)
    assert out == run_dir / "encoder" and not (run_dir / "encoder.partial").exists()
    res = json.loads((out / "eval.json").read_text())
    assert res["real_split"] == "val" and res["n_real"] == 32  # the validation store, all its 32 patches
    assert res["real_refined_mse"] <= res["real_recon_mse"] + 1e-6
    assert (out / "recon.png").is_file()
    with pytest.raises(ConfigError, match="--overwrite"):
        train_encoder(run_dir, EncoderConfig(steps=30, **ENC), device="cpu", progress=False)

    m = LatentModel.load(run_dir, require_encoder=True)
    assert m.provenance()["encoder_sha256"] and m.provenance()["checkpoint_sha256"] == res["checkpoint_sha256"]
    # generate() against a direct call of the networks
    w = m.sample_w(5, seed=2)
    direct = m.generator(broadcast_w(torch.from_numpy(w), m.generator.n_slots), noise=False)
    expect = direct.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(m.generate(w), expect)
    # truncation: psi = 0 would be the mean image; psi = 0.5 on z equals the hand-made w
    z = m.sample_z(3, seed=5)
    w_full = m.to_w(z)
    np.testing.assert_array_equal(m.generate(z=z, truncation=0.5),
                                  m.generate(m.mean_w + 0.5 * (w_full - m.mean_w)))
    # encode: uint8 patches bigger than image_px are centre-cropped
    patches = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(m.encode(patches), m.encode(patches[:, 2:30, 2:30]), rtol=0, atol=0)
    assert m.encode(patches).shape == (4, m.w_dim)
    # interpolate in z: endpoints are the mapped endpoints
    path = m.interpolate(z[0], z[1], 5, space="z")
    np.testing.assert_allclose(path[[0, -1]], w_full[:2], atol=1e-5)
    with pytest.raises(ShapeError, match=r"\[N, 8\]"):
        m.generate(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match="H >= 28"):
        m.encode(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ConfigError, match="exactly one"):
        m.generate()


def test_encoder_of_another_checkpoint_is_refused(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from pathgan.stages.train_encoder import train_encoder

    if not (run_dir / "encoder").exists():
        train_encoder(run_dir, EncoderConfig(steps=5, **ENC), device="cpu", eval_refine_steps=0, progress=False)
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    from pathgan.train import load_checkpoint, save_checkpoint

    ckpt = sorted((copy / "checkpoints").glob("step-*.pt"))[-1]
    state = load_checkpoint(ckpt)
    state["ema"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["ema"].items()}
    state.pop("format")
    save_checkpoint(ckpt.with_name("step-9999999.pt"), state)  # training went on; the encoder did not
    with pytest.raises(PathganError, match="another generator checkpoint"):
        LatentModel.load(copy)


def test_cli_train_encoder(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("encoder*"))
    r = CliRunner().invoke(main, ["train-encoder", "--run", str(copy), "--set", "steps=10", "--set", "lr=0.002",
                                  "--set", "n_eval=16", "--device", "cpu", "--eval-refine-steps", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "w_r2" in r.output and "real (val slides)" in r.output
    r = CliRunner().invoke(main, ["train-encoder", "--run", str(copy), "--set", "steps=0"])
    assert r.exit_code != 0 and "steps=0 is not allowed" in r.output
    r = CliRunner().invoke(main, ["train-encoder", "--run", str(copy), "--set", "steps=10"])
    assert r.exit_code != 0 and "--overwrite" in r.output
    # the old spelling (positional RUN_DIR) still opens the run, with one deprecation line
    r = CliRunner().invoke(main, ["train-encoder", str(copy), "--set", "steps=10"])
    assert r.stderr.splitlines()[0] == "pathgan: positional RUN_DIR is deprecated; use --run RUN_DIR (removed in 0.3)"
    assert r.exit_code != 0 and "already holds a trained encoder" in r.output
