"""pathgan.models: every registered config runs, parameter counts match the reference, and the
behaviours training relies on (style mixing, noise control, attention identity at init,
spectral norm, the fixed mapping block) hold."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError
from pathgan.models import (
    PathologyGAN,
    broadcast_w,
    build,
    describe_configs,
    get_config,
    list_configs,
    mix_styles,
    param_counts,
    register,
)
from pathgan.models._layers import AdaIN, NoiseInjection, SelfAttention

torch.set_num_threads(2)

CPU = "pathologygan-56-cpu"


def _toy(cfg: ModelConfig) -> ModelConfig:
    """Same image size, stage count and attention resolution; tiny widths."""
    n = cfg.n_stages
    return dataclasses.replace(
        cfg, z_dim=8, w_dim=8, g_channels=(16,) + (8,) * (n - 1), d_channels=(8,) * (n - 1) + (16,),
        dense_units=16, g_stem_channels=8,
    )


def _stir(model: nn.Module, value: float = 0.1) -> None:
    """Give attention and noise non-zero strength so every path carries gradient."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.5)
            elif isinstance(m, NoiseInjection):
                m.scale.fill_(value)


@pytest.fixture(scope="module")
def meta_224() -> dict[str, int]:
    with torch.device("meta"):
        return param_counts(build("pathologygan-224-paper"))


@pytest.mark.parametrize("name", list_configs())
def test_every_config_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    cfg = get_config(name)
    cfg = cfg if name == CPU else _toy(cfg)
    model = build(cfg)
    _stir(model)
    n = 1 if cfg.image_px >= 448 else 2
    z1, z2 = torch.randn(n, cfg.z_dim), torch.randn(n, cfg.z_dim)
    ws, _ = mix_styles(model.mapping(z1), model.mapping(z2), model.n_slots, 0.5)
    img = model.generator(ws)
    assert img.shape == (n, 3, cfg.image_px, cfg.image_px)
    if cfg.output == "sigmoid":  # a linear output is unbounded while training (clamped in eval mode)
        assert float(img.detach().min()) >= 0.0 and float(img.detach().max()) <= 1.0
    logits = model.discriminator(img)
    patches = (cfg.image_px // 2**cfg.d_patch_stage) ** 2 if cfg.d_patch_stage else 0
    assert logits.shape == ((n, 1 + patches) if patches else (n,))
    (logits.sum() + img.mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


def test_param_counts_match_reference(meta_224: dict[str, int]) -> None:
    c = meta_224
    # Reference (TF, 224 px): G ~187M of which ~161M in the 12,544-unit AdaIN MLP, D ~30M, mapping ~0.36M.
    assert c["generator"] == pytest.approx(187e6, rel=0.005)
    assert c["generator_adain_stem"] == pytest.approx(161e6, rel=0.005)
    assert c["discriminator"] == pytest.approx(30e6, rel=0.005)
    assert c["mapping"] == pytest.approx(0.36e6, rel=0.01)
    # The stem AdaIN MLP exactly: w 200 -> inter 6372 -> gamma, beta of 12,544 = 7 * 7 * 256.
    inter = (12_544 + 200) // 2
    assert c["generator_adain_stem"] == 200 * inter + inter + 2 * (inter * 12_544 + 12_544)
    assert c["total"] == c["mapping"] + c["generator"] + c["discriminator"]


def test_describe_configs_lists_all_and_reference() -> None:
    text = describe_configs()
    for name in list_configs():
        assert name in text
    assert "reference" in text and "186.88" in text and "161.17" in text


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match="pathologygan-224"):
        get_config("pathologygan-999")
    register(get_config(CPU))  # identical re-registration is allowed
    with pytest.raises(ConfigError, match="already registered"):
        register(dataclasses.replace(get_config(CPU), z_dim=65))
    assert {"pathologygan-56", "pathologygan-112", "pathologygan-224", "pathologygan-448", CPU} <= set(
        list_configs()
    )


def test_shape_checks_at_boundaries() -> None:
    model = build(CPU)
    with pytest.raises(ValueError, match="Generator ws"):
        model.generator(torch.zeros(2, model.n_slots - 1, model.cfg.w_dim))
    with pytest.raises(ValueError, match="Discriminator x"):
        model.discriminator(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="MappingNetwork z"):
        model.mapping(torch.zeros(2, model.cfg.z_dim + 1))


# --- style mixing -------------------------------------------------------------------------------


def test_mix_styles_crossover_and_mask() -> None:
    n, n_slots, w_dim = 256, 6, 4
    w1, w2 = torch.zeros(n, w_dim), torch.ones(n, w_dim)
    gen = torch.Generator().manual_seed(0)
    ws, mixed = mix_styles(w1, w2, n_slots, 0.5, generator=gen)
    assert ws.shape == (n, n_slots, w_dim) and mixed.dtype == torch.bool and mixed.shape == (n,)
    assert 0.3 < mixed.float().mean() < 0.7
    from_w2 = ws[..., 0] == 1.0  # [N, n_slots]
    assert torch.equal(ws, from_w2[..., None].float().expand_as(ws))  # each slot is exactly w1 or w2
    assert not from_w2[~mixed].any()
    for i in torch.nonzero(mixed).flatten():
        row = from_w2[i]
        k = int(torch.nonzero(row)[0])  # first slot from w2
        assert 1 <= k < n_slots
        assert not row[:k].any() and row[k:].all()
    ks = {int(torch.nonzero(from_w2[i])[0]) for i in torch.nonzero(mixed).flatten()}
    assert ks == set(range(1, n_slots))  # every crossover slot occurs


def test_mix_styles_p0_p1_and_determinism() -> None:
    w1, w2 = torch.randn(64, 3), torch.randn(64, 3)
    ws, mixed = mix_styles(w1, w2, 4, 0.0)
    assert not mixed.any() and torch.equal(ws, broadcast_w(w1, 4))
    ws, mixed = mix_styles(w1, w2, 4, 1.0)
    assert mixed.all() and torch.equal(ws[:, -1], w2) and torch.equal(ws[:, 0], w1)
    a = mix_styles(w1, w2, 4, 0.5, generator=torch.Generator().manual_seed(3))
    b = mix_styles(w1, w2, 4, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ConfigError):
        mix_styles(w1, w2, 4, 1.5)


# --- noise --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_model() -> PathologyGAN:
    torch.manual_seed(0)
    model = build(CPU).eval()  # eval(): spectral norm stops updating its power-iteration vectors
    _stir(model)
    return model


def test_noise_control(cpu_model: PathologyGAN) -> None:
    z = torch.randn(2, cpu_model.cfg.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        off1 = cpu_model.generate(z, noise=False)
        off2 = cpu_model.generate(z, noise=False)
        s1 = cpu_model.generate(z, generator=torch.Generator().manual_seed(7))
        s2 = cpu_model.generate(z, generator=torch.Generator().manual_seed(7))
        s3 = cpu_model.generate(z, generator=torch.Generator().manual_seed(8))
    assert torch.equal(off1, off2)
    assert torch.equal(s1, s2)
    assert not torch.allclose(s1, s3)
    assert not torch.allclose(s1, off1)


def test_truncation(cpu_model: PathologyGAN) -> None:
    z = torch.randn(3, cpu_model.cfg.z_dim)
    with torch.no_grad():
        w_avg = cpu_model.mapping(torch.randn(256, cpu_model.cfg.z_dim)).mean(0)
        at_avg = cpu_model.generate(z, truncation=0.0, w_avg=w_avg, noise=False)
        ref = cpu_model.generator(broadcast_w(w_avg[None].expand(3, -1), cpu_model.n_slots), noise=False)
    torch.testing.assert_close(at_avg, ref)
    with pytest.raises(ConfigError, match="w_avg"):
        cpu_model.generate(z, truncation=0.7)


# --- layers -------------------------------------------------------------------------------------


def test_attention_is_identity_at_init() -> None:
    torch.manual_seed(0)
    att = SelfAttention(16)
    assert float(att.gamma.detach()) == 0.0
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(att(x), x)
    with torch.no_grad():
        att.gamma.fill_(1.0)
    assert not torch.allclose(att(x), x)
    # Double backward (the gradient penalty) must work through attention.
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(att(x).square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert att.query.parametrizations.weight.original.grad is not None


def test_every_generator_attention_and_noise_start_neutral() -> None:
    model = build(CPU)
    gammas = [m.gamma for m in model.modules() if isinstance(m, SelfAttention)]
    assert len(gammas) == 2 and all(float(g.detach()) == 0.0 for g in gammas)  # one in G, one in D
    assert all(float(m.scale.detach().abs().max()) == 0.0 for m in model.modules() if isinstance(m, NoiseInjection))


def test_adain_is_styled_instance_norm() -> None:
    torch.manual_seed(0)
    norm = AdaIN(32, 16)
    x, w = torch.randn(4, 32, 8, 8) * 3 + 2, torch.randn(4, 16)
    y = norm(x, w)
    # independent reference: torch's instance_norm, then gamma/beta from the MLP of w by hand
    h = torch.relu(norm.hidden(w))
    gamma, beta = 1 + norm.to_gamma(h), norm.to_beta(h)
    ref = gamma[:, :, None, None] * nn.functional.instance_norm(x, eps=1e-5) + beta[:, :, None, None]
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    # the style matters from the start (a near-zero init let the generator ignore w in training)
    y2 = norm(x, torch.randn(4, 16))
    assert (y - y2).abs().mean() > 0.1 * y.abs().mean()
    flat = norm(torch.randn(4, 32) * 5, w)  # flat [N, F]: normalised over the feature axis
    assert flat.shape == (4, 32)


def test_spectral_norm_and_orthogonal_init() -> None:
    model = build(CPU)
    layers = [m for m in model.discriminator.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    g_convs = [m for m in model.generator.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert g_convs and all(parametrize.is_parametrized(m, "weight") for m in g_convs)
    for m in layers:
        assert float(m.bias.detach().abs().max()) == 0.0
    w = model.discriminator.dense.parametrizations.weight.original  # [256, 7 * 7 * (64 + 1 mbstd)]: orthonormal rows
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-4, rtol=0)


def test_mapping_blocks_use_both_layers() -> None:
    """The reference's residual dense block discarded its first layer; ours must train it."""
    torch.manual_seed(0)
    model = build(CPU)
    model.mapping(torch.randn(16, model.cfg.z_dim)).square().sum().backward()
    assert len(model.mapping.blocks) == model.cfg.mapping_blocks
    for block in model.mapping.blocks:
        grad = block.fc1.parametrizations.weight.original.grad
        assert grad is not None and float(grad.abs().sum()) > 0.0


def test_minibatch_std_layer() -> None:
    from pathgan.errors import ShapeError
    from pathgan.models._discriminator import MinibatchStd

    torch.manual_seed(0)
    x = torch.randn(8, 5, 7, 7)
    out = MinibatchStd(4)(x)
    assert out.shape == (8, 6, 7, 7)
    torch.testing.assert_close(out[:, :5], x)
    extra = out[:, 5]
    assert torch.equal(extra, extra[:, :1, :1].expand_as(extra))  # one constant map per sample
    # groups of 4 samples strided by N // G = 2: {0, 2, 4, 6} and {1, 3, 5, 7}
    for members in ([0, 2, 4, 6], [1, 3, 5, 7]):
        want = x[members].std(dim=0, unbiased=False).mean()
        for m in members:
            torch.testing.assert_close(extra[m, 0, 0], want, rtol=1e-5, atol=1e-6)
    # identical samples -> (almost) zero std
    assert float(MinibatchStd(4)(x[:1].expand(4, -1, -1, -1).contiguous())[:, 5].max()) < 1e-3
    # a batch smaller than the group is one group; a batch not divisible by it is refused
    assert MinibatchStd(4)(x[:2]).shape == (2, 6, 7, 7)
    with pytest.raises(ShapeError, match="multiple of the group size 4"):
        MinibatchStd(4)(x[:6])
    with pytest.raises(ValueError):
        MinibatchStd(0)


def test_discriminator_mbstd_flag() -> None:
    from pathgan.models._discriminator import MinibatchStd

    # off in the reference-sized configs, on (groups of 4) in the small CPU ones
    assert all(get_config(n).mbstd_group == 0 for n in list_configs() if n.startswith("pathologygan-") and not n.endswith("-cpu"))
    assert get_config(CPU).mbstd_group == 4
    with torch.device("meta"):
        assert not any(isinstance(m, MinibatchStd) for m in build("pathologygan-56").discriminator.modules())
    with pytest.raises(ConfigError, match="mbstd_group"):
        dataclasses.replace(get_config(CPU), mbstd_group=-1)
    torch.manual_seed(0)
    cfg = dataclasses.replace(_toy(get_config(CPU)), mbstd_group=2)
    d = build(cfg).discriminator.eval()  # eval: spectral norm's power iteration stays put
    assert sum(isinstance(m, MinibatchStd) for m in d.modules()) == 1
    x = torch.rand(4, 3, cfg.image_px, cfg.image_px, requires_grad=True)
    logits = d(x)
    assert logits.shape == (4,)
    logits.sum().backward()
    assert all(p.grad is not None for p in d.parameters())
    # sample 0's groupmate is sample 2 (groups {0, 2} and {1, 3}): changing it moves logit 0,
    # changing sample 1 (another group) does not
    with torch.no_grad():
        y = x.detach().clone()
        y[2] = torch.rand_like(y[2])
        assert float((d(y)[0] - logits[0]).abs()) > 0
        y = x.detach().clone()
        y[1] = torch.rand_like(y[1])
        torch.testing.assert_close(d(y)[[0, 2]], logits.detach()[[0, 2]])
