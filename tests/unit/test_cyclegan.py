"""CycleGAN stain/site translation: networks, registry, losses, image pool, training loop (resume,
divergence guard), translated stores, translation metrics and the CLI, on tiny synthetic stores."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from pathgan.config import TranslateConfig, from_dict
from pathgan.errors import ConfigError, PathganError, ShapeError
from pathgan.models._cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    build_translator_discriminator,
    build_translator_generator,
    list_translator_discriminators,
    list_translator_generators,
    patch_receptive_field,
)
from pathgan.presets import preset_names, preset_path
from pathgan.runs import latest_checkpoint
from pathgan.store import (
    PatchStore,
    create_store,
    finalize_store,
    partial_stores,
    temp_path_for,
    write_shard,
)
from pathgan.train import load_checkpoint
from pathgan.train.cyclegan import (
    CycleGANTrainer,
    ImagePool,
    build_translators,
    cycle_loss,
    gan_d_loss,
    gan_g_loss,
    identity_loss,
    translate_images,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
PX = 32


def _tiny_cfg(**kw: object) -> TranslateConfig:
    base = dict(patch_px=PX, ngf=4, g_res_blocks=1, ndf=4, d_layers=2, batch_size=2, pool_size=4, steps=4,
                sample_every=100, checkpoint_every=100, log_every=1, n_samples=2, n_eval=8, seed=3,
                min_tissue_fraction=0.0, max_white_fraction=1.0)
    return TranslateConfig(**{**base, **kw})  # type: ignore[arg-type]


def _images(n: int, seed: int, tint: tuple[float, float, float], px: int = PX) -> np.ndarray:
    """uint8 (n, px, px, 3): smooth pink-ish tissue with dark 'nuclei', multiplied by ``tint``."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.55, 0.9, size=(n, px // 8, px // 8, 1))
    base = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    yy, xx = np.mgrid[:px, :px]
    for i in range(n):
        for cy, cx in rng.integers(4, px - 4, size=(3, 2)):
            base[i, (yy - cy) ** 2 + (xx - cx) ** 2 < 9] *= 0.45
    rgb = base * np.array([0.95, 0.7, 0.85]) * np.array(tint)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def _make_store(path: Path, n: int, seed: int, tint: tuple[float, float, float], px: int = PX,
                mpp: float = 1.0) -> Path:
    patches = _images(n, seed, tint, px)
    coords = np.stack([np.arange(n) * px * 2, np.full(n, 7 * seed)], 1).astype(np.int64)
    tmp = temp_path_for(path)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.linspace(0.5, 1, n), pen_fraction=np.zeros(n),
                 patch_px=px, patches_per_shard=8, codec="zstd", jpeg_quality=90,
                 thumbnail=np.zeros((4, 4, 3), np.uint8), tissue_mask=np.ones((4, 4), bool),
                 pen_mask=np.zeros((4, 4), bool))
    for s in range(0, n, 8):
        write_shard(tmp, s, patches[s : s + 8], np.ones(len(patches[s : s + 8])), np.zeros(len(patches[s : s + 8])))
    attrs = {"slide_id": path.stem, "split": None, "label": "x", "source": {"sha256_first_mib": str(seed), "size_bytes": 1},
             "mpp_requested": mpp, "mpp_effective": [mpp, mpp], "source_level": 0, "patch_px": px, "stride_px": px,
             "n_patches": n, "config": {}, "pathgan_version": "test"}
    finalize_store(tmp, path, attrs)
    return path


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("translate_stores")
    a = _make_store(root / "a" / "slide-a.zarr", 20, 1, (1.0, 1.0, 1.0))
    b = _make_store(root / "b" / "slide-b.zarr", 20, 2, (0.75, 0.85, 1.1))
    return a, b


@pytest.fixture(scope="module")
def trained_run(domains: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pathgan.stages.translate import train_translate

    a, b = domains
    return train_translate([a], [b], _tiny_cfg(steps=3), runs_root=tmp_path_factory.mktemp("runs"),
                           name="tiny", device="cpu", progress=False)


# -- networks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "h", "w"), [(1, 8, 8), (2, 32, 32), (1, 48, 32), (3, 64, 64)])
def test_generator_keeps_shape(n: int, h: int, w: int) -> None:
    gen = ResnetGenerator(ngf=4, n_blocks=2)
    y = gen(torch.rand(n, 3, h, w) * 2 - 1)
    assert y.shape == (n, 3, h, w)
    # The output is tanh of the last convolution (an independent recomputation through the same
    # layers minus the tanh), so images live in (-1, 1) whatever the weights: push the last conv's
    # bias far out and the outputs saturate instead of growing.
    last_conv = gen.net[-2]
    pre = {}
    hook = last_conv.register_forward_hook(lambda _m, _i, out: pre.setdefault("x", out))
    y = gen(torch.rand(n, 3, h, w) * 2 - 1)
    hook.remove()
    torch.testing.assert_close(y, torch.tanh(pre["x"]))
    with torch.no_grad():
        last_conv.bias.fill_(50.0)
    assert torch.all(gen(torch.rand(n, 3, h, w) * 2 - 1) == 1.0)


@pytest.mark.parametrize("shape", [(1, 3, 30, 32), (1, 1, 32, 32), (3, 32, 32), (1, 3, 4, 4)])
def test_generator_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\[N, 3, H, W\]|multiples of 4"):
        ResnetGenerator(ngf=4, n_blocks=1)(torch.zeros(shape))


@pytest.mark.parametrize(("n_layers", "px", "out_px"), [(1, 16, 6), (2, 32, 6), (3, 64, 6), (3, 256, 30)])
def test_discriminator_map_size(n_layers: int, px: int, out_px: int) -> None:
    d = PatchDiscriminator(ndf=4, n_layers=n_layers)
    assert d(torch.zeros(2, 3, px, px)).shape == (2, 1, out_px, out_px)
    with pytest.raises(ShapeError, match=f">= {d.min_px}"):
        d(torch.zeros(1, 3, d.min_px - 1, d.min_px - 1))


@pytest.mark.parametrize("n_layers", [2, 3])
def test_discriminator_receptive_field(n_layers: int) -> None:
    """One logit depends on exactly patch_receptive_field(n) input pixels per side (70 for the paper's 3).

    Instance norm mixes in statistics of the whole image, so it is removed for this check."""
    assert patch_receptive_field(3) == 70 and patch_receptive_field(2) == 34
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=2, n_layers=n_layers)
    for i, m in enumerate(d.net):
        if isinstance(m, torch.nn.InstanceNorm2d):
            d.net[i] = torch.nn.Identity()
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    y = d(x)
    c = y.shape[-1] // 2
    y[0, 0, c, c].backward()
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()  # type: ignore[union-attr]
    assert int(cols.max() - cols.min() + 1) == patch_receptive_field(n_layers)


def test_registry_names_match_config_and_build() -> None:
    from typing import get_args

    from pathgan.config import TranslatorDiscriminator, TranslatorGenerator

    assert list_translator_generators() == sorted(get_args(TranslatorGenerator))
    assert list_translator_discriminators() == sorted(get_args(TranslatorDiscriminator))
    for name in list_translator_generators():
        assert build_translator_generator(name, ngf=2, n_blocks=1)(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    for name in list_translator_discriminators():
        assert build_translator_discriminator(name, ndf=2, n_layers=1)(torch.zeros(1, 3, 16, 16)).shape[:2] == (1, 1)
    with pytest.raises(ConfigError, match="unknown translation generator 'unet'; known: \\['resnet'\\]"):
        build_translator_generator("unet", ngf=2, n_blocks=1)


@pytest.mark.parametrize("preset", preset_names("translate"))
def test_every_preset_builds_and_runs(preset: str) -> None:
    cfg = from_dict(TranslateConfig, yaml.safe_load(preset_path("translate", preset).read_text()))
    nets = build_translators(cfg)
    px = 64  # the paper-sized preset's networks are fully convolutional: a 64-px forward checks them cheaply
    x = torch.rand(1, 3, px, px) * 2 - 1
    with torch.no_grad():
        for g in ("g_ab", "g_ba"):
            assert nets[g](x).shape == x.shape
        for d in ("d_a", "d_b"):
            assert nets[d](x).shape[:2] == (1, 1)
    widths = {m.out_channels for m in nets["g_ab"].modules() if isinstance(m, torch.nn.Conv2d)}
    assert 4 * cfg.ngf in widths and cfg.ngf in widths


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kw", "message"), [
    ({"patch_px": 30}, "patch_px=30 is not allowed; expected a multiple of 4"),
    ({"patch_px": 16, "d_layers": 3}, "patch_px=16 .* >= 32 for d_layers=3"),
    ({"lr": 0.0}, r"lr=0.0 is not allowed; expected \(0, 1\)"),
    ({"gan_loss": "wgan"}, "gan_loss='wgan' is not allowed"),
    ({"ngf": 0}, "ngf=0 is not allowed; expected an integer >= 1"),
    ({"lambda_cycle": -1.0}, "lambda_cycle=-1.0 is not allowed; expected >= 0"),
    ({"decay_fraction": 1.5}, r"decay_fraction=1.5 is not allowed; expected \[0, 1\]"),
    ({"generator": "unet"}, "generator='unet' is not allowed"),
])
def test_config_errors_name_field_value_and_range(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TranslateConfig(**kw)


def test_linear_decay_schedule() -> None:
    cfg = TranslateConfig(steps=10, decay_fraction=0.5, lr=0.5)
    # the paper's rule: constant, then 1 - k / (n_decay + 1) for the k-th decaying step
    assert [cfg.lr_at(i) / 0.5 for i in range(10)] == pytest.approx([1, 1, 1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert {replace(cfg, decay_fraction=0.0).lr_at(i) for i in range(10)} == {0.5}


# -- losses and pool ---------------------------------------------------------------------------
def test_lsgan_and_l1_losses_match_hand_values() -> None:
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5])
    # D: 0.5 * (mean((real - 1)^2) + mean(fake^2)) = 0.5 * (0.125 + 0.125)
    assert float(gan_d_loss("lsgan", real, fake)) == pytest.approx(0.125)
    # G: mean((D(G(x)) - 1)^2) over [0.5, 2] = (0.25 + 1) / 2
    assert float(gan_g_loss("lsgan", torch.tensor([[0.5], [2.0]]))) == pytest.approx(0.625)
    assert float(gan_g_loss("vanilla", torch.zeros(3))) == pytest.approx(np.log(2))
    assert float(gan_d_loss("vanilla", torch.zeros(3), torch.zeros(3))) == pytest.approx(np.log(2))
    x = torch.zeros(1, 3, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 1.2  # one of 12 values off by 1.2
    assert float(cycle_loss(y, x)) == pytest.approx(0.1)
    assert float(identity_loss(x, x)) == 0.0
    with pytest.raises(ShapeError, match="shapes differ"):
        cycle_loss(x, torch.zeros(1, 3, 2, 3))
    with pytest.raises(ConfigError, match="gan_loss='hinge'"):
        gan_g_loss("hinge", x)  # type: ignore[arg-type]


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_image_pool_fills_then_mixes_and_resumes() -> None:
    assert torch.equal(ImagePool(0).query(torch.ones(2, 3, 1, 1)), torch.ones(2, 3, 1, 1))
    pool = ImagePool(4)
    g = torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 1, 1)
    assert torch.equal(pool.query(first, g), first) and len(pool) == 4  # filling: returned as is
    state = pool.state_dict()
    g_state = g.get_state()
    seen_old, outputs = 0, []
    for i in range(200):
        new = torch.full((1, 3, 1, 1), 100.0 + i)
        out = pool.query(new, g)
        outputs.append(out)
        if float(out[0, 0, 0, 0]) != 100.0 + i:
            seen_old += 1
            assert float(out[0, 0, 0, 0]) < 100.0 + i  # an older image, never a future one
            assert any(float(img[0, 0, 0]) == 100.0 + i for img in pool.images)  # the new one took its place
        assert len(pool) == 4
    assert 60 < seen_old < 140  # about half the time
    again = ImagePool(4)
    again.load_state_dict(state)
    g.set_state(g_state)
    replay = [again.query(torch.full((1, 3, 1, 1), 100.0 + i), g) for i in range(200)]
    assert all(torch.equal(x, y) for x, y in zip(outputs, replay, strict=True))


# -- the training loop -------------------------------------------------------------------------
def _trainer(cfg: TranslateConfig, a: Path, b: Path, run_dir: Path) -> CycleGANTrainer:
    from pathgan.stages.translate import _datasets

    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    da, db = _datasets([PatchStore(a)], cfg, cfg.seed), _datasets([PatchStore(b)], cfg, cfg.seed + 1)
    return CycleGANTrainer(cfg, data_a=da[0], data_b=db[0], eval_a=da[1], eval_b=db[1], run_dir=run_dir,
                           device=torch.device("cpu"), provenance={"test": True}, progress=False)


def _same(x: object, y: object, where: str = "") -> None:
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and torch.equal(x, y), where
    elif isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for k in x:
            _same(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, list | tuple):
        assert isinstance(y, list | tuple) and len(x) == len(y), where
        for i, (p, q) in enumerate(zip(x, y, strict=True)):
            _same(p, q, f"{where}[{i}]")
    else:
        assert x == y, where


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_resume_is_exact(domains: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = domains
    cfg = _tiny_cfg(steps=4, pool_size=3)  # pool fills in 2 steps, so the resumed steps draw from it
    straight = _trainer(cfg, a, b, tmp_path / "straight")
    straight.run()
    half = _trainer(cfg, a, b, tmp_path / "half")
    half.run(steps=2)
    assert latest_checkpoint(tmp_path / "half").name == "step-0000002.pt"  # type: ignore[union-attr]
    resumed = _trainer(cfg, a, b, tmp_path / "half")
    resumed.resume()
    assert resumed.step == 2
    resumed.run()
    s1, s2 = straight.state(), resumed.state()
    for key in ("step", "data", "models", "opt_g", "opt_d", "pools", "rng"):
        _same(s1[key], s2[key], key)
    rows1 = [json.loads(r) for r in (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()]
    rows2 = [json.loads(r) for r in (tmp_path / "half" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows2] == [1, 2, 3, 4]
    for r1, r2 in zip(rows1, rows2, strict=True):
        assert {k: v for k, v in r1.items() if k not in ("time", "sec_per_step")} == \
               {k: v for k, v in r2.items() if k not in ("time", "sec_per_step")}


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_training_reduces_cycle_loss(domains: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = domains
    trainer = _trainer(_tiny_cfg(steps=40, lr=2e-3, decay_fraction=0.0, ngf=8), a, b, tmp_path / "run")
    losses = []
    for _ in range(40):
        out = trainer.train_step(trainer.stream_a.next(), trainer.stream_b.next())
        losses.append(out["loss_cycle_a"] + out["loss_cycle_b"])
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses  # measured ~0.5 over seeds 3-5


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_divergence_guard(domains: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = domains
    trainer = _trainer(_tiny_cfg(), a, b, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.nets.state_dict().items()}
    bad = torch.full((2, 3, PX, PX), float("nan"))
    with pytest.raises(PathganError, match="generator loss became nan at step 0; the last good checkpoint"):
        trainer.train_step(bad, torch.rand(2, 3, PX, PX))
    _same(before, dict(trainer.nets.state_dict()), "weights unchanged")


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_run_directory_contents(trained_run: Path, domains: tuple[Path, Path]) -> None:
    saved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert saved["translate"]["steps"] == 3 and saved["stores"]["a"] == [str(domains[0].resolve())]
    ckpt = load_checkpoint(latest_checkpoint(trained_run))  # type: ignore[arg-type]
    assert ckpt["kind"] == "cyclegan" and ckpt["step"] == 3
    prov = ckpt["provenance"]
    assert prov["store_schema"] == 1 and prov["patch_mpp"] == 1.0 and prov["crop_px"] == PX
    assert prov["domains"]["b"]["slides"] == ["slide-b"] and len(prov["domains"]["a"]["data_fingerprint"]) == 64
    assert sorted(p.name for p in (trained_run / "samples").iterdir()) == ["step-0000000.png", "step-0000003.png"]
    from PIL import Image

    grid = np.asarray(Image.open(trained_run / "samples" / "step-0000003.png"))
    assert grid.shape == (6 * (PX + 2) + 2, 2 * (PX + 2) + 2, 3)  # 6 rows (A, AB, ABA, B, BA, BAB) x n_samples
    ev = json.loads((trained_run / "eval.json").read_text())
    assert ev["step"] == 3 and ev["a2b"]["n_source"] == 8
    assert ev["a2b"]["ssim_h_identity"] == pytest.approx(1.0)
    assert all(np.isfinite(v) for v in ev["b2a"].values() if isinstance(v, float))


# -- translate ---------------------------------------------------------------------------------
@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_translate_writes_a_valid_store(trained_run: Path, domains: tuple[Path, Path], tmp_path: Path) -> None:
    from pathgan.data._transforms import to_float_nchw, to_uint8_nhwc
    from pathgan.stages.translate import load_translator, translate_stores

    a, _ = domains
    rows = translate_stores(trained_run, [a.parent], tmp_path / "out", direction="a2b", device="cpu",
                            batch_size=7, png_dir=tmp_path / "png", progress=False)
    out = PatchStore(rows[0].out)
    src = PatchStore(a)
    assert out.path == tmp_path / "out" / "slide-a.zarr" and len(out) == len(src) == rows[0].n_patches
    assert np.array_equal(out.coords, src.coords) and np.array_equal(out.tissue_fraction, src.tissue_fraction)
    assert out.slide_id == "slide-a" and out.mpp == src.mpp and out.attrs["label"] == "x"
    gen, info = load_translator(trained_run, "a2b")
    t = out.attrs["translation"]
    assert t["direction"] == "a2b" and t["checkpoint_sha256"] == info["checkpoint_sha256"] and t["step"] == 3
    expected = to_uint8_nhwc(translate_images(gen, to_float_nchw(src.read(slice(None)))))
    assert np.array_equal(out.read(slice(None)), expected)  # zstd source -> lossless output, row for row
    assert not np.array_equal(out.read(slice(None)), src.read(slice(None)))
    assert np.isfinite(out.qc("blur")).all() and not partial_stores(out.path)
    assert len(list((tmp_path / "png" / "slide-a").glob("*.png"))) == len(src)
    (row,) = translate_stores(trained_run, [a], tmp_path / "out", progress=False, device="cpu")
    assert row.failed and "already exists; choose another --out or pass --overwrite" in row.error


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_translate_bad_stores_are_failed_rows_and_the_others_go_on(trained_run: Path, domains: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    """As in tile and encode, a bad store is a failed row with the reason; the good ones are written."""
    from pathgan.stages.translate import translate_stores

    a, _ = domains
    big = _make_store(tmp_path / "big.zarr", 4, 5, (1, 1, 1), px=48)
    coarse = _make_store(tmp_path / "coarse.zarr", 4, 5, (1, 1, 1), mpp=2.0)
    junk = tmp_path / "junk.zarr"
    junk.mkdir()
    rows = translate_stores(trained_run, [tmp_path / "missing.zarr", big, a, coarse, junk], tmp_path / "o",
                            device="cpu", progress=False)
    assert [(Path(r.store).name, r.status) for r in rows] == [
        ("missing.zarr", "failed"), ("big.zarr", "failed"), ("coarse.zarr", "failed"), ("junk.zarr", "failed"),
        ("slide-a.zarr", "translated")]
    errors = {Path(r.store).name: r.error for r in rows}
    assert "missing.zarr: does not exist" in errors["missing.zarr"]
    assert "big.zarr: patch_px=48, but the run's domain A stores have patch_px [32]" in errors["big.zarr"]
    assert "coarse.zarr: patches at 2 um/px, but the run was trained at 1 um/px" in errors["coarse.zarr"]
    assert "junk.zarr is not a pathgan patch store" in errors["junk.zarr"]
    assert len(PatchStore(tmp_path / "o" / "slide-a.zarr")) == len(PatchStore(a)) == rows[-1].n_patches
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["slide-a.zarr"]  # nothing for the bad ones
    (same,) = translate_stores(trained_run, [a], a.parent, device="cpu", progress=False, overwrite=True)
    assert same.failed and "is the input store itself" in same.error
    with pytest.raises(ConfigError, match="no stores given"):
        translate_stores(trained_run, [], tmp_path / "o", device="cpu", progress=False)


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_translate_errors(trained_run: Path, domains: tuple[Path, Path], tmp_path: Path) -> None:
    from pathgan.stages.translate import translate_stores

    a, _ = domains
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "checkpoints").mkdir()
    (empty / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    with pytest.raises(PathganError, match=r"empty_run has no checkpoint yet \(checkpoints/step-\*\.pt\); train it with pathgan train-translate"):
        translate_stores(empty, [a], tmp_path / "o", device="cpu", progress=False)


@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_train_translate_input_errors(domains: tuple[Path, Path], tmp_path: Path) -> None:
    from pathgan.stages.translate import train_translate

    a, b = domains
    (tmp_path / "nothing").mkdir()
    kw = {"runs_root": tmp_path / "runs", "device": "cpu", "progress": False}
    with pytest.raises(ConfigError, match=r"--stores-b .*nothing: no <slide_id>\.zarr stores in this folder"):
        train_translate([a], [tmp_path / "nothing"], _tiny_cfg(), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--stores-a: no stores given"):
        train_translate([], [b], _tiny_cfg(), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"--stores-a .*slide-a\.zarr: patch_px=32, smaller than TranslateConfig patch_px=64"):
        train_translate([a], [b], _tiny_cfg(patch_px=64), **kw)  # type: ignore[arg-type]
    coarse = _make_store(tmp_path / "coarse.zarr", 8, 5, (1, 1, 1), mpp=2.0)
    with pytest.raises(ConfigError, match="domain A stores are at 1 um/px and domain B stores at 2 um/px"):
        train_translate([a], [coarse], _tiny_cfg(), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--stores-a and --stores-b share store"):
        train_translate([a], [a.parent], _tiny_cfg(), **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run dir for bad input


# -- metrics -----------------------------------------------------------------------------------
def test_translation_metrics_baselines_and_known_shift() -> None:
    from pathgan.metrics._translation import (
        histogram_w1,
        rgb_histograms,
        stain_angles,
        translation_metrics,
    )

    x = _images(12, 7, (1.0, 1.0, 1.0))
    x = np.clip(x, 30, 200).astype(np.uint8)  # room for a shift without clipping, and no white pixels
    assert np.all(histogram_w1(rgb_histograms(x), rgb_histograms(x)) == 0)
    for d in (10, 20):
        shifted = x.copy()
        shifted[..., 0] += d
        w1 = histogram_w1(rgb_histograms(x), rgb_histograms(shifted))
        assert w1 == pytest.approx([d / 255, 0, 0])  # a uniform shift of d grey levels moves the mass d/255
    res = translation_metrics(x, x, x[::-1].copy(), seed=0)
    assert res["ssim_h"] == pytest.approx(1.0) and res["ssim_h_identity"] == pytest.approx(1.0)
    assert res["ssim_h_shuffled"] < 0.9
    assert res["hist_w1_before"] == res["hist_w1_after"] == pytest.approx(0.0, abs=1e-12)
    target = x.copy()
    target[..., 0] += 20
    res = translation_metrics(x, target, target, seed=0)  # a perfect colour transfer
    assert res["hist_w1_before"] == pytest.approx(20 / 255 / 3) and res["hist_w1_after"] == pytest.approx(0.0)
    assert res["hed_mean_before"] > 0.005 and res["hed_mean_after"] == pytest.approx(0.0)
    # Macenko stain vectors (pathgan.stain): a red shift turns them; identical sets share them
    assert res["macenko_angle_before"] > 1.0 and res["macenko_angle_after"] == pytest.approx(0.0, abs=1e-6)
    assert stain_angles(np.eye(3)[:, :2], np.eye(3)[:, [0, 2]]) == pytest.approx([0.0, 90.0])
    with pytest.raises(ShapeError, match="must have the shape of source"):
        translation_metrics(x, x[:, :16], x)


# -- CLI ---------------------------------------------------------------------------------------
@pytest.mark.slow  # trains a CycleGAN (or uses the trained fixture)
def test_cli_train_resume_translate_eval(domains: tuple[Path, Path], tmp_path: Path) -> None:
    from pathgan.cli import main

    a, b = domains
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(asdict(_tiny_cfg(steps=2, decay_fraction=0.0))))
    runner = CliRunner()
    res = runner.invoke(main, ["train-translate", "--stores-a", str(a), "--stores-b", str(b.parent), "--config",
                               str(cfg_path), "--out", str(tmp_path / "runs"), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "00000-tiny"
    assert (run / "checkpoints" / "step-0000002.pt").is_file() and (run / "eval.json").is_file()
    res = runner.invoke(main, ["train-translate", "--resume", str(run), "--set", "steps=3", "--device", "cpu",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert latest_checkpoint(run).name == "step-0000003.pt"  # type: ignore[union-attr]
    assert json.loads((run / "eval.json").read_text())["step"] == 3
    res = runner.invoke(main, ["train-translate", "--resume", str(run), "--set", "lr=0.1"])
    assert res.exit_code != 0 and "only --set steps=N may change" in res.output
    res = runner.invoke(main, ["translate", "--run", str(run), "--direction", "b2a", "--stores", str(b), "--out",
                               str(tmp_path / "t"), "--eval", "--n-eval", "8", "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "t" / "eval.json").read_text())
    assert ev["direction"] == "b2a" and ev["targets"] == [str(a.resolve())] and ev["n_source"] == 8
    assert len(PatchStore(tmp_path / "t" / "slide-b.zarr")) == 20
    # without --stores: the run's own stores of the source domain; the old positional STORES still work
    res = runner.invoke(main, ["translate", "--run", str(run), "--out", str(tmp_path / "t2"), "--device", "cpu",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "t2").glob("*.zarr")] == [a.name]
    res = runner.invoke(main, ["translate", "--run", str(run), "--direction", "b2a", str(b), "--out",
                               str(tmp_path / "t3"), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines()[0] == "pathgan: positional STORES is deprecated; use --stores STORES (removed in 0.3)"
    assert len(PatchStore(tmp_path / "t3" / "slide-b.zarr")) == 20
    res = runner.invoke(main, ["train-translate", "--stores-a", str(tmp_path / "nope.zarr"), "--stores-b", str(b),
                               "--out", str(tmp_path / "runs")])
    assert res.exit_code == 1 and "--stores-a" in res.output and "nope.zarr: does not exist" in res.output
