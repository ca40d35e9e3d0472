"""Adversarial losses and regularisers (pure: tensors in, scalar tensors out, no I/O).

Logits are the raw, unbounded discriminator outputs ``C(x)`` of shape ``[N]`` (``[N, 1]`` is
accepted and flattened). Every loss returns a 0-d tensor: the batch mean, summed over the
loss's terms, so that the training loop only multiplies by weights and adds.

Differences from the PathologyGAN reference (TensorFlow, AdalbertoCq/Pathology-GAN), fixed here
on purpose and not reproduced:

* its gradient penalty reduced the gradient norm over the wrong axes (see
  :func:`gradient_penalty`);
* its orthogonal regulariser was attached to the layers but never added to the loss; here
  :func:`orthogonal_regularizer` is a plain term that the loop adds when
  ``TrainConfig.ortho_weight > 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from pathgan.config import LossKind
from pathgan.errors import ConfigError, ShapeError

__all__ = ["d_loss", "g_loss", "gradient_penalty", "is_finite", "orthogonal_regularizer", "r1_penalty"]


def _flat_logits(name: str, logits: Tensor) -> Tensor:
    """``[N]`` or ``[N, 1]`` -> ``[N]``; anything else is a caller bug worth a clear message."""
    if logits.ndim == 1:
        return logits
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    raise ShapeError(f"{name} must have shape [N], [N, 1] or [N, 1 + K], got {list(logits.shape)}")


def _heads(real: Tensor, fake: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The (real, fake) logits of each discriminator head. ``[N, 1 + K]`` logits (a global logit
    then K patch logits, :class:`pathgan.models.Discriminator` with ``d_patch_stage``) are two heads
    of equal weight: the global one, and the K patch verdicts pooled as N * K terms."""
    if real.ndim == 2 and real.shape[1] > 1 and fake.ndim == 2 and fake.shape[1] == real.shape[1]:
        return [(real[:, 0], fake[:, 0]), (real[:, 1:].reshape(-1), fake[:, 1:].reshape(-1))]
    return [(_flat_logits("real_logits", real), _flat_logits("fake_logits", fake))]


def _check_kind(kind: str) -> None:
    if kind not in get_args(LossKind):
        raise ConfigError(f"loss={kind!r} is not allowed; expected one of {get_args(LossKind)}")


def _bce_with_logits(logits: Tensor, target_is_real: bool) -> Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against a constant label.

    ``-log(sigmoid(z)) = softplus(-z)`` and ``-log(1 - sigmoid(z)) = softplus(z)``; softplus
    never forms ``sigmoid(z)`` explicitly, so large ``|z|`` cannot produce ``log(0)``.
    """
    return F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()


def d_loss(kind: LossKind, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss for one batch.

    Parameters
    ----------
    kind : ``relativistic`` (relativistic-average standard GAN, PathologyGAN's loss),
        ``hinge``, ``nonsaturating`` or ``wgan``.
    real_logits : ``[N]`` discriminator outputs on real images.
    fake_logits : ``[M]`` discriminator outputs on generated images (usually ``M == N``).

    Returns
    -------
    0-d tensor, the loss to minimise w.r.t. the discriminator.

    Raises
    ------
    ConfigError : ``kind`` is not a :data:`pathgan.config.LossKind`.
    ValueError : logits are not ``[N]``, ``[N, 1]`` or ``[N, 1 + K]`` (global + patch heads,
        each head a term of equal weight).
    """
    _check_kind(kind)
    heads = _heads(real_logits, fake_logits)
    if len(heads) > 1:
        return sum((d_loss(kind, r, f) for r, f in heads), torch.zeros((), device=real_logits.device))
    real, fake = heads[0]
    if kind == "relativistic":
        # Jolicoeur-Martineau (2018): D_ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)]). The mean of the
        # other batch is *not* detached: the discriminator is trained through both terms.
        return _bce_with_logits(real - fake.mean(), True) + _bce_with_logits(fake - real.mean(), False)
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    return fake.mean() - real.mean()  # wgan


def g_loss(kind: LossKind, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Generator loss for one batch.

    Parameters
    ----------
    kind : see :func:`d_loss`.
    real_logits : ``[N]`` discriminator outputs on real images; only the relativistic loss uses
        them (its generator also pushes real logits down relative to fake ones). Gradients through
        them reach only the discriminator, which the generator's optimiser does not step.
    fake_logits : ``[M]`` discriminator outputs on generated images.

    Returns
    -------
    0-d tensor, the loss to minimise w.r.t. the generator.

    Raises
    ------
    ConfigError : ``kind`` is not a :data:`pathgan.config.LossKind`.
    ValueError : logits are not ``[N]``, ``[N, 1]`` or ``[N, 1 + K]`` (global + patch heads,
        each head a term of equal weight).
    """
    _check_kind(kind)
    heads = _heads(real_logits, fake_logits)
    if len(heads) > 1:
        return sum((g_loss(kind, r, f) for r, f in heads), torch.zeros((), device=fake_logits.device))
    real, fake = heads[0]
    if kind == "relativistic":
        # The discriminator's loss with the labels swapped: fakes should look "more real than
        # the average real", reals "less real than the average fake".
        return _bce_with_logits(fake - real.mean(), True) + _bce_with_logits(real - fake.mean(), False)
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    return -fake.mean()  # hinge and wgan share the generator loss


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Two-sided gradient penalty on random real/fake interpolates (Gulrajani et al. 2017).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample, drawn as
    ``torch.rand(N, generator=generator)`` on the generator's device (or ``real``'s when no
    generator is given); the penalty is ``mean_n (||dC(x_hat_n)/dx_hat_n||_2 - 1)^2`` with the
    norm taken per sample over ``[C, H, W]``.

    Parameters
    ----------
    discriminator : maps ``[N, C, H, W]`` images to ``[N]`` or ``[N, 1]`` logits. It must treat
        samples independently (no batch norm), as the PathologyGAN discriminator does, because
        the per-sample gradients are taken from the gradient of the batch sum.
    real, fake : ``[N, C, H, W]`` images; both are detached, so the penalty trains only the
        discriminator.
    generator : source of ``eps``, for reproducible steps.

    Returns
    -------
    0-d tensor, differentiable w.r.t. the discriminator's parameters (``create_graph=True``).

    Raises
    ------
    ValueError : ``real`` and ``fake`` differ in shape or are not 4-d.
    """
    if real.shape != fake.shape or real.ndim != 4:
        raise ShapeError(
            f"real and fake must both be [N, C, H, W]; got {list(real.shape)} and {list(fake.shape)}"
        )
    n = real.shape[0]
    device = generator.device if generator is not None else real.device
    eps = torch.rand(n, generator=generator, device=device).to(real.device, real.dtype)
    eps = eps.view(n, 1, 1, 1)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    logits = discriminator(x_hat)
    # Sample n's logit depends only on x_hat[n], so the gradient of the sum holds every
    # per-sample gradient at once: [N, C, H, W].
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    # FIX of the reference bug: PathologyGAN took one norm per colour channel over the *whole
    # batch* (reducing over N, H, W) and summed the penalties of the channels, so the constraint
    # did not act on any single sample's gradient and grew with the batch size. The WGAN-GP
    # penalty needs one norm per sample over (C, H, W).
    grad_norm = torch.linalg.vector_norm(grad.flatten(start_dim=1), dim=1)  # [N]
    return ((grad_norm - 1.0) ** 2).mean()


def r1_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 penalty (Mescheder et al. 2018): ``mean_n ||dC(x_n)/dx_n||^2 / 2`` on real images.

    Unlike :func:`gradient_penalty` it does not ask for unit gradients anywhere; it asks for a
    flat discriminator on the data, which is what makes the simple non-saturating loss converge.
    The training loop multiplies it by ``gp_weight`` (the usual gamma).

    Parameters
    ----------
    discriminator : maps ``[N, C, H, W]`` images to ``[N]`` or ``[N, 1]`` logits, each sample's logit
        depending only on that sample (see :func:`gradient_penalty`; minibatch-std breaks this
        slightly, as in StyleGAN, and the penalty is then that of the batch sum).
    real : ``[N, C, H, W]`` real images (detached here).

    Returns
    -------
    0-d tensor, differentiable w.r.t. the discriminator's parameters.
    """
    if real.ndim != 4:
        raise ShapeError(f"real must be [N, C, H, W], got {list(real.shape)}")
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(x).float().sum(), x, create_graph=True)
    return 0.5 * grad.float().square().flatten(1).sum(dim=1).mean()


def _raw_weight(layer: nn.Module) -> Tensor | None:
    """The trainable weight of a conv/linear layer, under spectral norm if any.

    The regulariser acts on the parameter the optimiser updates: with spectral norm that is the
    un-normalised ``original`` (new-style parametrisation) or ``weight_orig`` (old-style hook).
    """
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    original = getattr(layer, "weight_orig", None)
    if isinstance(original, Tensor):
        return original
    weight = getattr(layer, "weight", None)
    return weight if isinstance(weight, Tensor) else None


_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
           nn.ConvTranspose3d)


def orthogonal_regularizer(module: nn.Module) -> Tensor:
    """Off-diagonal orthogonality penalty (Brock et al. 2018, BigGAN).

    ``sum_W ||W W^T * (1 - I)||_F^2`` over the weights of every conv and linear layer in
    ``module``, each reshaped to ``[dim0, -1]`` (``[out, in * k * k]`` for a convolution). Only the
    off-diagonal part is penalised, so rows are pushed towards orthogonality without fixing their
    norms (which spectral norm already controls).

    Parameters
    ----------
    module : any module; conv/linear layers with spectral norm contribute their un-normalised
        weight.

    Returns
    -------
    0-d tensor (zero when ``module`` has no such layer), differentiable w.r.t. the weights.
    The training loop multiplies it by ``TrainConfig.ortho_weight``.
    """
    total: Tensor | None = None
    for layer in module.modules():
        if not isinstance(layer, _LAYERS):
            continue
        weight = _raw_weight(layer)
        if weight is None:
            continue
        w = weight.reshape(weight.shape[0], -1)  # [rows, fan]
        gram = w @ w.T  # [rows, rows]
        off_diagonal = gram * (1.0 - torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype))
        term = (off_diagonal**2).sum()
        total = term if total is None else total + term
    if total is None:
        param = next(module.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return total


def is_finite(t: Tensor) -> bool:
    """``True`` when every element of ``t`` is finite (no NaN, no +-inf).

    Note that this synchronises with the device; call it every ``log_every`` steps, not every step.
    """
    return bool(torch.isfinite(t).all())
