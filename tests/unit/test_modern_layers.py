"""The layers and training options the CPU preset is built from, each against an independent
reference: modulated convolution vs a per-sample convolution loop, equalized layers vs plain
F.linear / F.conv2d with the He scale, R1 vs its closed form on a linear critic, interpolating
upsampling vs the transposed conv's grid, the EMA half-life vs hand-computed decays."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pathgan.config import ModelConfig, TrainConfig
from pathgan.errors import ConfigError
from pathgan.models import build
from pathgan.models._generator import _StyledConv
from pathgan.models._layers import EqualizedConv2d, EqualizedLinear, ModulatedConv2d
from pathgan.train import Trainer
from pathgan.train.losses import r1_penalty

torch.set_num_threads(2)

TOY = ModelConfig(name="toy-64", image_px=32, stem_px=4, z_dim=8, w_dim=8, mapping_blocks=1, g_channels=(16, 8, 8),
                  d_channels=(8, 8, 16), dense_units=16, g_stem_channels=16, attention_px=16, mbstd_group=2,
                  upsample="bilinear", weights="equalized", style="modulated", output="linear")


@pytest.mark.parametrize("transposed", [False, True])
def test_modulated_conv_equals_per_sample_convolution(transposed: bool) -> None:
    torch.manual_seed(0)
    layer = ModulatedConv2d(5, 7, 2 if transposed else 3, 6, transposed=transposed)
    x, w = torch.randn(3, 5, 6, 6), torch.randn(3, 6)
    got = layer(x, w)
    weight = layer.conv.weight * layer.conv.w_gain
    style = layer.affine(w)
    for n in range(3):
        if transposed:  # [in, out, k, k]
            wn = weight * style[n][:, None, None, None]
            wn = wn / wn.square().sum(dim=(0, 2, 3), keepdim=True).add(1e-8).sqrt()
            ref = F.conv_transpose2d(x[n : n + 1], wn, stride=2)
        else:  # [out, in, k, k]
            wn = weight * style[n][None, :, None, None]
            wn = wn / wn.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
            ref = F.conv2d(x[n : n + 1], wn, padding=1)
        torch.testing.assert_close(got[n : n + 1], ref, rtol=1e-4, atol=1e-5)


def test_equalized_layers_are_he_scaled_plain_layers() -> None:
    torch.manual_seed(1)
    lin = EqualizedLinear(10, 4, bias_init=0.5, lr_mul=0.01)
    x = torch.randn(3, 10)
    ref = F.linear(x, lin.weight * 0.01 / math.sqrt(10), lin.bias * 0.01)
    torch.testing.assert_close(lin(x), ref)
    torch.testing.assert_close(lin.bias * 0.01, torch.full((4,), 0.5))  # the effective bias is bias_init
    conv = EqualizedConv2d(8, 6, 3)
    y = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(conv(y), F.conv2d(y, conv.weight / math.sqrt(8 * 9), conv.bias, padding=1))
    # He scaling: unit-variance input -> unit-variance output, whatever the fan-in
    big = EqualizedConv2d(256, 256, 3, bias=False)
    with torch.no_grad():
        out = big(torch.randn(4, 256, 16, 16))
    assert 0.9 < float(out.std()) < 1.1


def test_r1_is_half_the_squared_gradient_norm_of_a_linear_critic() -> None:
    a = torch.randn(3, 4, 4)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * a).flatten(1).sum(dim=1) + 3.0

    real = torch.rand(5, 3, 4, 4)
    assert float(r1_penalty(critic, real)) == pytest.approx(0.5 * float(a.square().sum()), rel=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_interpolating_upsample_draws_no_grid_where_transposed_does(mode: str) -> None:
    """A constant feature map stays constant (away from the zero-padded border) through interpolation
    + 3x3 conv; the 2x2 stride-2 transposed conv turns it into a period-2 pattern."""
    torch.manual_seed(2)
    x, w = torch.ones(1, 4, 8, 8), torch.randn(1, 8)
    smooth = _StyledConv(4, 4, dataclasses.replace(TOY, upsample=mode), up=True).eval()
    grid = _StyledConv(4, 4, dataclasses.replace(TOY, upsample="transposed"), up=True).eval()
    a = smooth(x, w, noise=False, generator=None)[0, :, 1:-1, 1:-1]
    b = grid(x, w, noise=False, generator=None)[0]
    assert float((a - a.mean(dim=(1, 2), keepdim=True)).abs().max()) < 1e-5
    torch.testing.assert_close(b[:, :-2, :-2], b[:, 2:, 2:])  # period 2 ...
    assert float((b[:, 0::2] - b[:, 1::2]).abs().max()) > 1e-3  # ... and not constant


def test_linear_output_is_unbounded_in_training_and_clamped_in_eval() -> None:
    torch.manual_seed(3)
    model = build(TOY)
    with torch.no_grad():
        model.generator.to_rgb.bias.fill_(5.0)  # push every pixel above 1
    ws = model.mapping(torch.randn(2, 8)).unsqueeze(1).expand(-1, model.n_slots, -1)
    assert float(model.generator.train()(ws).min()) > 1.0
    assert float(model.generator.eval()(ws).max()) == 1.0


def test_model_config_checks_the_new_fields() -> None:
    with pytest.raises(ConfigError, match="image_px"):
        dataclasses.replace(TOY, image_px=56)  # not 4 * 2**L
    with pytest.raises(ConfigError, match="weights"):
        dataclasses.replace(TOY, weights="spectral")  # modulation needs equalized weights
    with pytest.raises(ConfigError, match="upsample"):
        dataclasses.replace(TOY, upsample="bicubic")  # type: ignore[arg-type]
    assert ModelConfig(name="ref").image_px == 224 and ModelConfig(name="ref").stem_px == 7


def _trainer(**kw: object) -> Trainer:
    cfg = TrainConfig(model="toy", batch_size=4, n_critic=1, loss="nonsaturating", penalty="r1", gp_weight=1.0,
                      lr_g=2e-3, lr_d=2e-3, beta1=0.0, beta2=0.99, diffaugment="color,translation,cutout", **kw)  # type: ignore[arg-type]
    return Trainer(cfg, TOY, dataset=None, run_dir=Path(tempfile.mkdtemp()), device=torch.device("cpu"),
                   provenance={}, progress=False)


def test_ema_half_life_in_images_with_rampup() -> None:
    tr = _trainer(ema_kimg=10.0, ema_rampup=0.05)
    assert tr.ema_beta(4) == pytest.approx(0.5 ** (4 / (4 * 0.05)))  # step 0: half-life 0.2 images
    tr.step = 99_999
    assert tr.ema_beta(4) == pytest.approx(0.5 ** (4 / 10_000))  # ramp over: 10 kimg
    assert _trainer(ema_decay=0.99).ema_beta(4) == 0.99  # ema_kimg = 0: the fixed decay


@pytest.mark.slow  # trains
def test_lazy_r1_runs_every_kth_step_with_k_times_the_weight() -> None:
    tr = _trainer(penalty_every=3)
    real = torch.rand(4, 3, 32, 32)
    seen = []
    for _ in range(4):
        tr._last.pop("gp", None)
        tr.train_step(real)
        seen.append("gp" in tr._last)
    assert seen == [True, False, False, True]


@pytest.mark.slow  # trains
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_step_with_bf16_autocast_and_channels_last(precision: str) -> None:
    """The GPU speed options run on CPU: a step with bf16 autocast and channels_last gives finite
    losses, moves the weights and keeps them fp32."""
    tr = _trainer(precision=precision, channels_last=True)
    before = [p.detach().clone() for p in tr.g_params]
    out = tr.train_step(torch.rand(4, 3, 32, 32))
    assert all(math.isfinite(v) for v in out.values())
    assert all(p.dtype == torch.float32 for p in tr.g_params)
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.g_params, strict=True))


def test_fp16_is_refused_on_cpu() -> None:
    with pytest.raises(ConfigError, match="fp16"):
        _trainer(precision="fp16")
