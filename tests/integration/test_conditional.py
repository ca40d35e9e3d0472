"""Class-conditional training (cGAN): the networks, train-latent --set labels=..., and export by class."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY, make_tiny_store, register_tiny
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.config import TrainConfig
from pathgan.errors import ConfigError, ShapeError
from pathgan.models import Discriminator, MappingNetwork, get_config

pytestmark = pytest.mark.slow  # every test here trains a network or starts a Dask cluster

PINK, BLUE = (225, 110, 160), (110, 120, 215)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pink and two blue training slides (slide labels), one unlabelled slide."""
    register_tiny()
    root = tmp_path_factory.mktemp("cstores")
    make_tiny_store(root / "p1.zarr", 48, 1, "train", label="pink", colour=PINK)
    make_tiny_store(root / "p2.zarr", 48, 2, "train", label="pink", colour=PINK)
    make_tiny_store(root / "b1.zarr", 48, 3, "train", label="blue", colour=BLUE)
    make_tiny_store(root / "u1.zarr", 16, 4, "train", colour=(128, 128, 128))
    return root


def _cfg(**kw: object) -> TrainConfig:
    base = dict(model=TINY, batch_size=8, n_critic=1, steps=4, sample_every=1000, checkpoint_every=1000,
                log_every=1, n_samples=4, seed=3, min_tissue_fraction=0.0, max_white_fraction=1.0, labels="manifest")
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_mapping_reads_the_class_and_checks_it() -> None:
    torch.manual_seed(0)
    m = MappingNetwork(8, 8, 1, n_classes=3).eval()
    z = torch.randn(5, 8)
    w0, w1 = m(z, torch.zeros(5, dtype=torch.long)), m(z, torch.ones(5, dtype=torch.long))
    assert not torch.allclose(w0, w1)  # the class changes w for the same z
    # Each class's embedding enters scaled to unit second moment, like z: the same class gives the
    # same w whatever the batch around it.
    assert torch.allclose(m(z[:2], torch.zeros(2, dtype=torch.long)), w0[:2], atol=1e-6)
    with pytest.raises(ConfigError, match="class-conditional"):
        m(z)
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        m(z, torch.full((5,), 3))
    with pytest.raises(ConfigError, match="unconditional"):
        MappingNetwork(8, 8, 1)(z, torch.zeros(5, dtype=torch.long))


def test_discriminator_is_a_projection_discriminator() -> None:
    """logit(x, c) = psi(h) + <embed(c), h>: the difference between two classes is linear in h,
    computed here by hand from D's own feature h."""
    register_tiny()
    cfg = dataclasses.replace(get_config(TINY), n_classes=2)
    torch.manual_seed(0)
    d = Discriminator(cfg).eval()
    x = torch.rand(4, 3, 28, 28)
    feats: list[torch.Tensor] = []
    hook = d.dense.register_forward_hook(lambda _m, _i, out: feats.append(out))
    l0 = d(x, torch.zeros(4, dtype=torch.long))
    l1 = d(x, torch.ones(4, dtype=torch.long))
    hook.remove()
    h = torch.nn.functional.leaky_relu(feats[0], 0.2)
    emb = d.embed.weight  # [2, dense_units], spectrally normalised
    assert torch.allclose(l1 - l0, h @ (emb[1] - emb[0]), atol=1e-5)
    with pytest.raises(ConfigError):
        d(x)


def test_training_learns_each_class_colour(stores: Path, tmp_path: Path) -> None:
    """Trained on pink and blue slides, the class-conditional generator makes pink for 'pink' and
    blue for 'blue' (measured: red - blue channel difference of the two classes' samples)."""
    from pathgan.latents import LatentModel
    from pathgan.stages.train import train_latent

    cfg = _cfg(steps=120, lr_d=2e-3, lr_g=2e-3, ema_decay=0.0, diffaugment="", checkpoint_every=120)
    run = train_latent([stores], cfg, runs_root=tmp_path, device="cpu", progress=False)
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["n_classes"] == 2
    assert saved["data"]["class_names"] == ["blue", "pink"]
    assert saved["data"]["class_counts"] == {"blue": 48, "pink": 96}  # the unlabelled slide is left out
    m = LatentModel.load(run)
    assert m.conditional and m.class_names == ("blue", "pink")
    z = m.sample_z(64, seed=5)
    rb = {}
    for name in m.class_names:
        img = m.generate(z=z, class_name=name).astype(float)
        rb[name] = float((img[..., 0] - img[..., 2]).mean())
    real_gap = (PINK[0] - PINK[2]) - (BLUE[0] - BLUE[2])  # 170
    assert rb["pink"] - rb["blue"] > 0.4 * real_gap, rb
    with pytest.raises(ConfigError, match="class-conditional"):
        m.to_w(z)
    with pytest.raises(ConfigError, match="choose one of"):
        m.to_w(z, class_name="green")


def test_export_synthetic_uses_the_conditional_mapping(stores: Path, tmp_path: Path) -> None:
    """No encoder and no encoded stores are needed; every class is exported by default, and each
    image's latent regenerates it."""
    from pathgan.latents import LatentModel
    from pathgan.stages.train import train_latent

    run = train_latent([stores], _cfg(steps=4, checkpoint_every=4), runs_root=tmp_path / "r", device="cpu",
                       progress=False)
    out = tmp_path / "syn"
    res = CliRunner().invoke(main, ["export-synthetic", "--run", str(run), "--n", "3", "--out", str(out),
                                    "--truncation", "0.5", "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "synthetic.csv").open()))
    assert [r["class"] for r in rows] == ["blue"] * 3 + ["pink"] * 3
    latents = np.load(out / "latents.npy")
    m = LatentModel.load(run)
    # truncation 0.5 towards the class mean: w = mean_c + 0.5 (mapping(z, c) - mean_c)
    seeds = [int(r["seed"]) for r in rows[3:]]
    z = np.stack([m.sample_z(1, seed=s)[0] for s in seeds])
    expect = m.to_w(z, truncation=0.5, class_name="pink")
    np.testing.assert_allclose(latents[3:], expect, atol=1e-5)
    res = CliRunner().invoke(main, ["export-synthetic", "--run", str(run), "--n", "3", "--out", str(tmp_path / "x"),
                                    "--class", "green", "--no-progress"])
    assert res.exit_code != 0 and "green" in res.output and "pink" in res.output


def test_bad_label_sources(stores: Path, tmp_path: Path) -> None:
    from pathgan.stages.train import train_latent

    with pytest.raises(ConfigError, match=">= 2 classes"):
        train_latent([stores / "p1.zarr", stores / "p2.zarr"], _cfg(), runs_root=tmp_path, device="cpu",
                     progress=False)
    bad = tmp_path / "labels.csv"
    bad.write_text("slide_id,lab\np1,pink\n")
    with pytest.raises(ConfigError, match="missing column"):
        train_latent([stores], _cfg(labels=str(bad)), runs_root=tmp_path, device="cpu", progress=False)
    # A per-tile CSV: tiles of p1 labelled by their coords, two classes.
    tiles = tmp_path / "tiles.csv"
    tiles.write_text("slide_id,x,y,label\np1,0,1,a\np1,2,3,b\np1,4,5,a\n")
    run = train_latent([stores], _cfg(labels=str(tiles), batch_size=2, steps=1), runs_root=tmp_path / "t",
                       device="cpu", progress=False)
    import yaml

    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert data["class_counts"] == {"a": 2, "b": 1}
    assert data["label_source"]["kind"] == "csv"
