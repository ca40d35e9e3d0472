"""pathgan.stain on synthetic images with known stains (Beer-Lambert), both backends."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from skimage.color import lab2rgb, rgb2lab

from pathgan.errors import ConfigError, StainError
from pathgan.stain import (
    Macenko,
    Reinhard,
    StainReference,
    Vahadane,
    adjust_hed,
    concentrations,
    hed_jitter,
    make_normaliser,
    normaliser_from_params,
    stain_jitter,
)
from pathgan.stain import _numpy_ops as npo
from pathgan.stain import _torch_ops as T

H_TRUE = np.array([0.65, 0.70, 0.29]) / np.linalg.norm([0.65, 0.70, 0.29])  # Ruifrok-Johnston haematoxylin
E_TRUE = np.array([0.27, 0.80, 0.54]) / np.linalg.norm([0.27, 0.80, 0.54])  # an eosin as Macenko finds on H&E
S_TRUE = np.stack([H_TRUE, E_TRUE], axis=1)
# Another H&E: pure stains must reach the tissue threshold (every channel <= 205), so eosin needs a
# red density of at least ~0.11 per unit concentration to be seen pure at all.
S_OTHER = npo.finish_pair(np.array([0.55, 0.78, 0.30]), np.array([0.20, 0.85, 0.49]))


def beer_lambert(stains: np.ndarray, conc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 image ``shape + (3,)`` from a (3, 2) stain matrix and (P, 2) concentrations."""
    od = conc @ stains.T
    return np.clip(np.rint(256.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8).reshape(*shape, 3)


def synthetic(seed: int, stains: np.ndarray = S_TRUE, size: int = 96, background: float = 0.2) -> np.ndarray:
    """Nuclei (H-dominant), stroma (E-only) and mixed pixels at visible densities, plus white glass."""
    rng = np.random.default_rng(seed)
    n = size * size
    tissue = 1.0 - background
    kind = rng.choice(4, size=n, p=[0.25 * tissue, 0.3 * tissue, 0.45 * tissue, background])
    conc = np.zeros((n, 2))
    conc[kind == 0] = np.c_[rng.uniform(0.9, 2.0, (kind == 0).sum()), np.zeros((kind == 0).sum())]
    conc[kind == 1] = np.c_[np.zeros((kind == 1).sum()), rng.uniform(0.9, 2.0, (kind == 1).sum())]
    conc[kind == 2] = rng.uniform(0.3, 1.2, ((kind == 2).sum(), 2))
    return beer_lambert(stains, conc, (size, size))


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between matching columns of two (3, 2) matrices."""
    a = a / np.linalg.norm(a, axis=0)
    b = b / np.linalg.norm(b, axis=0)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0)))


def nchw(images: np.ndarray) -> torch.Tensor:
    batch = images[None] if images.ndim == 3 else images
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).contiguous()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------- stain vectors from known stains


@pytest.mark.parametrize(("cls", "tol_deg"), [(Macenko, 1.5), (Vahadane, 3.0)])
def test_recovers_known_stain_vectors(cls: type, tol_deg: float) -> None:
    img = synthetic(0)
    est = cls().estimate(img)
    assert not est.fallback
    assert angles_deg(est.stain_matrix, S_TRUE).max() < tol_deg
    # the torch backend finds the same vectors on the same pixels
    est_t = cls().estimate(nchw(img))
    assert est_t.stain_matrix.shape == (1, 3, 2)
    assert angles_deg(est_t.stain_matrix[0].numpy(), S_TRUE).max() < tol_deg
    np.testing.assert_allclose(est_t.stain_matrix[0].numpy(), est.stain_matrix, atol=2e-3)


@pytest.mark.parametrize("cls", [Macenko, Vahadane])
def test_stain_vectors_are_unit_positive_and_h_first(cls: type) -> None:
    # E given first: the estimate must still put the stain with the larger red density first
    swapped = S_TRUE[:, ::-1]
    s = cls().stain_matrix(synthetic(1, stains=swapped))
    assert np.all(s > 0)
    np.testing.assert_allclose(np.linalg.norm(s, axis=0), 1.0, atol=1e-6)
    assert s[0, 0] > s[0, 1]
    assert angles_deg(s, S_TRUE).max() < 3.0


def test_recovered_concentrations_match_the_truth() -> None:
    rng = np.random.default_rng(3)
    conc = rng.uniform(0.0, 1.5, (64 * 64, 2))
    img = beer_lambert(S_TRUE, conc, (64, 64))
    got = concentrations(img, S_TRUE).reshape(-1, 2)
    assert np.abs(got - conc).mean() < 0.01  # uint8 quantisation only
    got_t = concentrations(nchw(img), torch.as_tensor(S_TRUE))
    assert got_t.shape == (1, 2, 64, 64)
    np.testing.assert_allclose(got_t[0].permute(1, 2, 0).reshape(-1, 2).numpy(), got, atol=1e-4)


# ---------------------------------------------------------------- two-stain NNLS


@pytest.mark.parametrize("seed", range(3))
def test_nnls2_is_exact_nonnegative_least_squares(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stains = npo.finish_pair(rng.uniform(0, 1, 3), rng.uniform(0, 1, 3))
    od = rng.normal(0.3, 0.6, (3, 300)).astype(np.float32)  # includes negative densities and off-plane pixels
    want = np.stack([nnls(stains, od[:, i].astype(np.float64))[0] for i in range(od.shape[1])], axis=1)
    np.testing.assert_allclose(npo.nnls2(od, stains), want, atol=1e-4)
    got_t = T.nnls2(torch.from_numpy(od.T)[None], torch.as_tensor(stains, dtype=torch.float32)[None])
    np.testing.assert_allclose(got_t[0].numpy().T, want, atol=1e-4)


def test_nnls2_with_l1_minimises_the_lasso_objective() -> None:
    rng = np.random.default_rng(7)
    stains = S_TRUE
    od = rng.uniform(0.0, 1.5, (3, 50)).astype(np.float32)
    lam = 0.1
    got = npo.nnls2(od, stains, lam).astype(np.float64)

    def objective(c: np.ndarray) -> np.ndarray:  # c [K, 2, P] -> [K, P]
        return 0.5 * ((od[None] - np.einsum("ij,kjp->kip", stains, c)) ** 2).sum(1) + lam * c.sum(1)

    grid = np.stack(np.meshgrid(np.linspace(0, 3, 151), np.linspace(0, 3, 151)), -1).reshape(-1, 2)
    best = objective(np.repeat(grid[:, :, None], od.shape[1], axis=2)).min(axis=0)
    assert np.all(objective(got[None])[0] <= best + 1e-6)


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize("cls", [Macenko, Vahadane, Reinhard])
def test_transform_to_its_own_fit_is_nearly_identity(cls: type) -> None:
    img = synthetic(4)
    out = cls().fit(img).transform(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out.astype(int) - img).mean() < 1.0


@pytest.mark.parametrize("cls", [Macenko, Vahadane])
def test_normalised_image_takes_the_target_stains(cls: type) -> None:
    target_stains = S_OTHER
    normaliser = cls().fit(synthetic(5, stains=target_stains))
    out = normaliser.transform(synthetic(6))
    assert angles_deg(cls().stain_matrix(out), target_stains).max() < 3.0
    assert angles_deg(cls().stain_matrix(synthetic(6)), target_stains).max() > 5.0  # it had to move


def _lab_stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = rgb2lab(img).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


def test_reinhard_output_has_the_target_lab_mean_and_std() -> None:
    target = synthetic(7, stains=S_OTHER)
    out = Reinhard().fit(target).transform(synthetic(8))
    (m_out, s_out), (m_t, s_t) = _lab_stats(out), _lab_stats(target)
    np.testing.assert_allclose(m_out, m_t, atol=1.0)
    np.testing.assert_allclose(s_out, s_t, rtol=0.05, atol=0.5)
    m_src, _ = _lab_stats(synthetic(8))
    assert np.abs(m_src - m_t).max() > 3.0  # the source really differed


def test_masked_reinhard_keeps_background_pixels() -> None:
    img = synthetic(9, background=0.5)
    target = synthetic(10, stains=S_OTHER)
    out = Reinhard(masked=True).fit(target).transform(img)
    background = ~npo.tissue_mask(img.reshape(-1, 3), 0.15)
    assert background.mean() > 0.3
    np.testing.assert_array_equal(out.reshape(-1, 3)[background], img.reshape(-1, 3)[background])
    assert not np.array_equal(out, img)


@pytest.mark.parametrize("cls", [Macenko, Vahadane, Reinhard])
def test_numpy_and_torch_backends_agree(cls: type) -> None:
    target = synthetic(11, stains=S_OTHER)
    normaliser = cls().fit(target)
    batch = np.stack([synthetic(12), synthetic(13, background=0.6), np.full((96, 96, 3), 247, np.uint8)])
    out_np, info_np = normaliser.transform_with_info(batch)
    out_t, info_t = normaliser.transform_with_info(nchw(batch))
    assert out_t.dtype == torch.uint8 and out_t.shape == (3, 3, 96, 96)
    diff = np.abs(nhwc(out_t).astype(int) - out_np)
    assert diff.max() <= 1 and diff.mean() < 0.01
    np.testing.assert_array_equal(info_t.fallback.numpy(), info_np.fallback)
    assert info_np.fallback.tolist() == [False, False, True]
    # float [0, 1] tensors give float output of the same image
    out_f = normaliser.transform(nchw(batch).float() / 255.0)
    assert out_f.dtype == torch.float32 and float(out_f.min()) >= 0.0 and float(out_f.max()) <= 1.0
    assert np.abs(nhwc(out_f * 255.0) - out_np).max() <= 1.0
    # a single (H, W, 3) image and a single [3, H, W] tensor give the batch's first result
    np.testing.assert_array_equal(normaliser.transform(batch[0]), out_np[0])
    assert normaliser.transform(nchw(batch[0])[0]).shape == (3, 96, 96)


@pytest.mark.parametrize("cls", [Macenko, Vahadane])
def test_an_image_normalises_the_same_in_any_batch(cls: type) -> None:
    normaliser = cls().fit(synthetic(14))
    img = synthetic(15)
    alone = normaliser.transform(nchw(img))
    in_batch = normaliser.transform(nchw(np.stack([synthetic(16, background=0.7), img, synthetic(17)])))
    assert torch.equal(alone[0], in_batch[1])


@pytest.mark.parametrize("cls", [Macenko, Vahadane, Reinhard])
def test_too_little_tissue_falls_back_with_a_flag_and_stays_near_white(cls: type) -> None:
    normaliser = cls().fit(synthetic(18))
    near_white = np.random.default_rng(0).integers(236, 256, (64, 64, 3)).astype(np.uint8)
    near_white[:5, :5] = 120  # 25 tissue pixels: fewer than min_tissue_px
    out, info = normaliser.transform_with_info(near_white)
    assert bool(info.fallback)
    # glass stays glass: no stretching of a near-empty patch into colour (Reinhard leaves it as is;
    # Macenko/Vahadane only project its faint noise onto the reference stain plane)
    assert out[5:, 5:].min() >= 220 and np.abs(out.astype(int) - near_white).mean() < 6.0


@pytest.mark.parametrize("cls", [Macenko, Vahadane])
def test_background_heavy_patch_is_normalised_without_fallback(cls: type) -> None:
    img = synthetic(19, background=0.93)  # ~7 % tissue, ~650 pixels
    out, info = cls().fit(synthetic(20)).transform_with_info(img)
    assert not bool(info.fallback)
    assert out.shape == img.shape


def test_params_round_trip_through_json() -> None:
    for method in ("macenko", "vahadane", "reinhard"):
        fitted = make_normaliser(method).fit(synthetic(21))
        rebuilt = normaliser_from_params(json.loads(json.dumps(fitted.params())))
        assert rebuilt == fitted
        np.testing.assert_array_equal(rebuilt.transform(synthetic(22)), fitted.transform(synthetic(22)))


def test_lab_conversions_match_skimage() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5000, 3)).astype(np.uint8)
    want = rgb2lab(pixels[None])[0]
    np.testing.assert_allclose(npo.rgb_to_lab(pixels).T, want, atol=2e-3)
    got_t = T.rgb255_to_lab(torch.from_numpy(pixels.T.reshape(1, 3, 50, 100).astype(np.float32)))
    np.testing.assert_allclose(got_t[0].numpy(), want, atol=2e-3)
    lab = want.copy()
    lab[:, 1:] += rng.normal(0, 30, (5000, 2))  # push some colours out of gamut
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative Z it clips, as we do
        ref = np.rint(lab2rgb(lab[None])[0] * 255).astype(int)
    assert np.abs(npo.lab_to_rgb(lab.T.astype(np.float32)).astype(int) - ref).max() <= 1
    back_t = T.lab_to_rgb255(torch.from_numpy(lab.astype(np.float32))[None], torch.Size([1, 3, 50, 100]))
    assert np.abs(back_t[0].reshape(3, -1).T.round().numpy().astype(int) - ref).max() <= 1


# ---------------------------------------------------------------- augmentation


def test_hed_jitter_sigma_zero_is_identity_and_seeded() -> None:
    img = synthetic(23)
    np.testing.assert_array_equal(hed_jitter(img, 0.0, generator=1), img)
    a = hed_jitter(img, 0.05, generator=5)
    np.testing.assert_array_equal(a, hed_jitter(img, 0.05, generator=5))
    assert not np.array_equal(a, hed_jitter(img, 0.05, generator=6))
    assert 0.2 < np.abs(a.astype(int) - img).mean() < 20
    x = nchw(img).float() / 255
    assert float((hed_jitter(x, 0.0, generator=torch.Generator().manual_seed(0)) - x).abs().max()) < 1e-3
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(hed_jitter(x, 0.05, generator=g1), hed_jitter(x, 0.05, generator=g2))


def test_adjust_hed_numpy_and_torch_agree() -> None:
    img = np.stack([synthetic(24), synthetic(25)])
    scale = np.array([[1.1, 0.9, 1.0], [0.95, 1.05, 1.2]])
    shift = np.array([[0.02, -0.03, 0.0], [-0.01, 0.04, 0.01]])
    out = adjust_hed(img, scale, shift)
    out_t = adjust_hed(nchw(img), torch.as_tensor(scale), torch.as_tensor(shift))
    assert out_t.dtype == torch.uint8
    assert np.abs(nhwc(out_t).astype(int) - out).max() <= 1
    assert np.abs(out.astype(int) - img).mean() > 1.0


def test_stain_jitter_in_the_image_basis() -> None:
    img = synthetic(26)
    np.testing.assert_array_equal(stain_jitter(img, 0.0), img)
    a = stain_jitter(img, 0.2, generator=1)
    np.testing.assert_array_equal(a, stain_jitter(img, 0.2, generator=1))
    assert np.abs(a.astype(int) - img).mean() > 0.5
    x = nchw(np.stack([img, img]))
    out = stain_jitter(x, 0.2, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and not torch.equal(out[0], out[1])  # per-image draws
    assert torch.equal(stain_jitter(x, 0.0), x)
    # the change of optical density lies in the image's own stain plane (up to uint8 rounding)
    pixels = (img.reshape(-1, 3), a.reshape(-1, 3))
    change = (npo.optical_density(pixels[1]) - npo.optical_density(pixels[0])).astype(np.float64)
    plane = Macenko().stain_matrix(img)
    inside = plane @ np.linalg.lstsq(plane, change, rcond=None)[0]
    assert np.linalg.norm(change - inside) < 0.1 * np.linalg.norm(change)


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_stain_error_naming_what_was_given() -> None:
    fitted = Macenko().fit(synthetic(27))
    cases = [
        (np.zeros((8, 8, 3), np.float32), "dtype float32; expected uint8"),
        (np.zeros((8, 8, 4), np.uint8), r"shape \(8, 8, 4\); expected \(H, W, 3\)"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (torch.full((1, 3, 4, 4), 2.0), r"float values in \[2, 2\]; expected \[0, 1\]"),
        (torch.zeros((1, 3, 4, 4), dtype=torch.int32), "dtype torch.int32"),
        (torch.zeros((1, 4, 4, 3), dtype=torch.uint8), r"shape \[1, 4, 4, 3\]; expected \[3, H, W\]"),
        ([[1, 2, 3]], "got list"),
    ]
    for bad, message in cases:
        with pytest.raises(StainError, match=message):
            fitted.transform(bad)  # type: ignore[call-overload]
    with pytest.raises(StainError, match="not fitted"):
        Vahadane().transform(synthetic(28))
    with pytest.raises(StainError, match=r"stain target has 0 tissue pixels .* need at least 200"):
        Reinhard().fit(np.full((32, 32, 3), 250, np.uint8))
    with pytest.raises(StainError, match="stain target has 12 tissue pixels"):
        Macenko().fit(np.pad(np.full((3, 4, 3), 90, np.uint8), ((0, 20), (0, 20), (0, 0)), constant_values=250))
    with pytest.raises(StainError, match="sigma"):
        hed_jitter(synthetic(29), -0.1)
    with pytest.raises(StainError, match="non-negative"):
        concentrations(synthetic(29), -S_TRUE)
    assert issubclass(StainError, ValueError)


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="alpha=60"):
        Macenko(alpha=60)
    with pytest.raises(ConfigError, match="stain method 'ruifrok' is not allowed"):
        make_normaliser("ruifrok")
    with pytest.raises(StainError, match=r"\(3, 2\) stain matrix"):
        StainReference(((1.0, 0.0),), (1.0, 1.0))  # type: ignore[arg-type]


def test_importing_pathgan_stain_does_not_import_torch() -> None:
    code = ("import sys, numpy as np; import pathgan.stain as s; "
            "img = np.full((32, 32, 3), 120, np.uint8) + np.arange(32, dtype=np.uint8)[:, None, None]; "
            "s.Macenko().estimate(img); s.Reinhard().fit(img).transform(img); s.hed_jitter(img, 0.1, generator=0); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "False", out.stderr
