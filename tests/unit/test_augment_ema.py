"""Unit tests of pathgan.train.augment and pathgan.train.ema against numpy/skimage references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import hed2rgb, rgb2hed
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pathgan.errors import ConfigError
from pathgan.stain import hed_jitter
from pathgan.stain._hed_torch import hed_to_rgb, rgb_to_hed
from pathgan.train.augment import (
    cutout,
    diff_augment,
    dihedral,
    invert_dihedral,
    random_dihedral,
    translate,
)
from pathgan.train.ema import EMA


def _images(n: int = 4, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- diff_augment


def test_diff_augment_shape_gradient_and_determinism() -> None:
    x = _images().requires_grad_(True)
    out = diff_augment(x, generator=_gen(1))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    a = diff_augment(x.detach(), generator=_gen(5))
    b = diff_augment(x.detach(), generator=_gen(5))
    c = diff_augment(x.detach(), generator=_gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_empty_policy_is_identity_and_unknown_op_is_rejected() -> None:
    x = _images()
    assert torch.equal(diff_augment(x, "", generator=_gen(0)), x)
    assert torch.equal(diff_augment(x, " , ", generator=_gen(0)), x)
    with pytest.raises(ConfigError, match="'blur'"):
        diff_augment(x, "color,blur")


def test_translation_policy_is_a_bounded_integer_shift_per_sample() -> None:
    x = _images(n=6, size=16)
    out = diff_augment(x, "translation", generator=_gen(2))
    max_shift = 2  # 16 / 8
    for n in range(x.shape[0]):
        matches = [
            (dx, dy)
            for dx in range(-max_shift, max_shift + 1)
            for dy in range(-max_shift, max_shift + 1)
            if torch.equal(translate(x[n : n + 1], dx, dy), out[n : n + 1])
        ]
        assert len(matches) == 1


def test_cutout_policy_zeros_at_most_half_side_square() -> None:
    x = _images(n=6, size=16) + 0.1  # no genuine zeros
    out = diff_augment(x, "cutout", generator=_gen(3))
    for n in range(x.shape[0]):
        zeroed = (out[n] == 0).all(dim=0).numpy()  # [H, W]
        rows, cols = np.nonzero(zeroed)
        assert 0 < zeroed.sum() <= 8 * 8
        assert zeroed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a rectangle
        assert torch.equal(out[n][:, ~torch.from_numpy(zeroed)], x[n][:, ~torch.from_numpy(zeroed)])


def test_color_policy_is_per_sample_affine_in_brightness_saturation_contrast() -> None:
    # A grey image has no saturation to change, so colour jitter keeps it grey (channels equal).
    grey = _images(n=3, c=1).expand(3, 3, 16, 16).contiguous()
    out = diff_augment(grey, "color", generator=_gen(4))
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 0], out[:, 2])
    assert not torch.allclose(out, grey)


def test_translate_matches_numpy_slicing() -> None:
    x = _images(n=4, c=2, size=10)
    dx = torch.tensor([3, -2, 0, 10])
    dy = torch.tensor([1, 4, -3, 0])
    out = translate(x, dx, dy).numpy()
    xn = x.numpy()
    for n in range(4):
        expected = np.zeros_like(xn[n])
        sx, sy = int(dx[n]), int(dy[n])
        h, w = xn.shape[2:]
        dst_r = slice(max(sy, 0), h + min(sy, 0))
        src_r = slice(max(-sy, 0), h + min(-sy, 0))
        dst_c = slice(max(sx, 0), w + min(sx, 0))
        src_c = slice(max(-sx, 0), w + min(-sx, 0))
        expected[:, dst_r, dst_c] = xn[n][:, src_r, src_c]
        np.testing.assert_array_equal(out[n], expected)
    # positive dx moves content to the right: a single bright pixel at column 2 lands at column 5
    dot = torch.zeros(1, 1, 8, 8)
    dot[0, 0, 4, 2] = 1
    assert translate(dot, 3, -1)[0, 0, 3, 5] == 1


def test_cutout_matches_numpy_slicing_with_border_clip() -> None:
    x = _images(n=3, size=12)
    cx, cy, size = torch.tensor([6, 0, 11]), torch.tensor([6, 1, 11]), 4
    out = cutout(x, cx, cy, size).numpy()
    for n in range(3):
        expected = x[n].numpy().copy()
        x0, y0 = int(cx[n]) - size // 2, int(cy[n]) - size // 2
        expected[:, max(y0, 0) : y0 + size, max(x0, 0) : x0 + size] = 0
        np.testing.assert_array_equal(out[n], expected)


# ---------------------------------------------------------------- dihedral


def _numpy_dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """The documented convention on a [C, H, W] array: fliplr if k >= 4, then k % 4 CCW turns."""
    a = np.flip(img, axis=2) if k >= 4 else img
    return np.rot90(a, k % 4, axes=(1, 2))


def test_dihedral_matches_numpy_and_all_eight_are_distinct() -> None:
    img = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(1, 2, 5, 5)  # no symmetry
    batch = img.expand(8, -1, -1, -1)
    k = torch.arange(8)
    out = dihedral(batch, k)
    for i in range(8):
        np.testing.assert_array_equal(out[i].numpy(), _numpy_dihedral(img[0].numpy(), i))
    flat = {tuple(o.flatten().tolist()) for o in out}
    assert len(flat) == 8


def test_dihedral_inverse_composes_to_identity_per_sample() -> None:
    x = _images(n=8, size=7)
    k = torch.tensor([5, 0, 3, 7, 1, 6, 2, 4])  # mixed transforms in one batch
    back = dihedral(dihedral(x, k), invert_dihedral(k))
    assert torch.equal(back, x)
    assert invert_dihedral(torch.arange(8)).tolist() == [0, 3, 2, 1, 4, 5, 6, 7]


def test_random_dihedral_is_seeded_and_picks_a_dihedral_transform() -> None:
    x = _images(n=16, size=6)
    a = random_dihedral(x, _gen(9))
    assert torch.equal(a, random_dihedral(x, _gen(9)))
    for n in range(16):
        assert any(torch.equal(a[n : n + 1], dihedral(x[n : n + 1], torch.tensor([k]))) for k in range(8))


def test_dihedral_rejects_non_square_images() -> None:
    with pytest.raises(ValueError, match="square"):
        dihedral(torch.zeros(1, 3, 4, 5), torch.zeros(1, dtype=torch.long))


# ---------------------------------------------------------------- HED stain jitter


@pytest.fixture(scope="module")
def ihc_crop() -> np.ndarray:
    """A real haematoxylin-DAB micrograph bundled with skimage, [H, W, 3] float in [0, 1]."""
    return skdata.immunohistochemistry()[:64, :64].astype(np.float64) / 255.0


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


def test_rgb_to_hed_matches_skimage(ihc_crop: np.ndarray) -> None:
    ours = rgb_to_hed(_to_tensor(ihc_crop))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, rgb2hed(ihc_crop), atol=1e-5)
    hed = rgb2hed(ihc_crop)
    back = hed_to_rgb(_to_tensor(hed))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, hed2rgb(hed), atol=1e-5)


def test_hed_jitter_sigma_zero_is_identity(ihc_crop: np.ndarray) -> None:
    x = torch.cat([_to_tensor(ihc_crop), torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64)])
    out = hed_jitter(x, 0.0, generator=_gen(0))
    assert out.dtype == x.dtype
    assert float((out - x).abs().max()) < 1e-3


def test_hed_jitter_changes_stains_within_range(ihc_crop: np.ndarray) -> None:
    x = _to_tensor(ihc_crop).expand(4, -1, -1, -1)
    out = hed_jitter(x, 0.05, generator=_gen(1))
    assert torch.equal(out, hed_jitter(x, 0.05, generator=_gen(1)))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    diff = (out - x).abs().flatten(1).mean(dim=1)
    assert bool((diff > 1e-3).all()) and bool((diff < 0.1).all())  # visible but mild
    assert not torch.equal(out[0], out[1])  # per-image draws
    with pytest.raises(ValueError, match="sigma"):
        hed_jitter(x, -0.1)


# ---------------------------------------------------------------- EMA


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(spectral_norm(nn.Linear(4, 6)), nn.BatchNorm1d(6), nn.Linear(6, 2))


def _train_step(model: nn.Module) -> None:
    """Change the parameters, the batch-norm statistics and the spectral-norm u/v."""
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model(torch.randn(8, 4))


def test_ema_starts_as_a_frozen_copy() -> None:
    model = _model(0)
    ema = EMA(model)
    assert ema.module is not model
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    for (name, p), (_, q) in zip(ema.module.named_parameters(), model.named_parameters(), strict=True):
        assert torch.equal(p, q), name


def test_ema_decay_zero_copies_parameters_and_buffers() -> None:
    model = _model(0)
    ema = EMA(model)
    _train_step(model)
    ema.update(model, 0.0)
    live = model.state_dict()
    for name, value in ema.state_dict().items():
        assert torch.equal(value, live[name]), name
    assert "0.parametrizations.weight.0._u" in live  # spectral-norm vectors were among them


def test_ema_decay_half_averages_one_step_by_hand() -> None:
    model = _model(0)
    ema = EMA(model)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    _train_step(model)
    ema.update(model, 0.5)
    after, live = ema.state_dict(), model.state_dict()
    param_names = {name for name, _ in model.named_parameters()}
    for name, value in after.items():
        if name in param_names:
            torch.testing.assert_close(value, (before[name] + live[name]) / 2, rtol=0, atol=1e-6)
        else:  # buffers (running stats, u, v, num_batches_tracked) are copied, not averaged
            assert torch.equal(value, live[name]), name
    assert "0.parametrizations.weight.original" in param_names


def test_ema_state_dict_round_trip_and_mismatch() -> None:
    model = _model(0)
    ema = EMA(model)
    _train_step(model)
    ema.update(model, 0.9)
    restored = EMA(_model(1))
    restored.load_state_dict(ema.state_dict())
    x = torch.randn(5, 4)
    torch.testing.assert_close(restored.module(x), ema.module(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not match"):
        ema.update(nn.Linear(4, 2), 0.5)
    with pytest.raises(ValueError, match="decay"):
        ema.update(model, 1.5)


def test_reflect_translation_matches_numpy_reflect_padding() -> None:
    """translate(reflect=True) equals numpy's 'reflect' pad followed by a crop, per sample."""
    import numpy as np

    from pathgan.train.augment import translate

    x = torch.rand(3, 2, 9, 7)
    dx, dy = torch.tensor([3, -2, 0]), torch.tensor([-4, 1, 5])
    out = translate(x, dx, dy, reflect=True).numpy()
    for n in range(3):
        p = 6
        padded = np.pad(x[n].numpy(), ((0, 0), (p, p), (p, p)), mode="reflect")
        ref = padded[:, p - int(dy[n]) : p - int(dy[n]) + 9, p - int(dx[n]) : p - int(dx[n]) + 7]
        np.testing.assert_array_equal(out[n], ref)
    # no zero band: every output value is one of the input's
    assert float(translate(torch.ones(1, 1, 8, 8), 3, -3, reflect=True).min()) == 1.0
