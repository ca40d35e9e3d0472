"""Attention-based multiple-instance learning over a slide's patch latents (Ilse et al. 2018).

A slide is a *bag* of instances (its patches' latents, float32 ``[K, w_dim]``) with one label. The
gated attention head scores every instance, pools the bag as the attention-weighted mean of the
instance embeddings and classifies the pooled vector:

    h_k = ReLU(W_e x_k)                                      # [K, L] instance embedding
    a_k = softmax_k( w^T (tanh(V h_k) * sigmoid(U h_k)) )   # [K]    gated attention
    z   = sum_k a_k h_k                                      # [L]    bag embedding
    p   = softmax(W_c z)                                     # [C]    bag class probabilities

(Ilse, Tomczak & Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018, eq. 9.)
The weights ``a`` say which patches drove the slide's prediction. With a handful of slides this
head has a handful of training examples and is weak; it is here for cohorts with many slides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pathgan.errors import ConfigError, ShapeError

__all__ = ["AttentionMIL", "GatedAttention", "fit_attention_mil"]


class GatedAttention(nn.Module):
    """Gated attention pooling + linear classifier over padded bags ``[B, K, d]`` with a mask ``[B, K]``."""

    def __init__(self, in_dim: int, n_classes: int, *, hidden: int = 64, attention: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attn_v = nn.Linear(hidden, attention)
        self.attn_u = nn.Linear(hidden, attention)
        self.attn_w = nn.Linear(attention, 1)
        self.classify = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [B, K, d], ``mask`` bool [B, K] (True = real instance) -> logits [B, C], attention [B, K]."""
        h = self.embed(x)  # [B, K, L]
        score = self.attn_w(torch.tanh(self.attn_v(h)) * torch.sigmoid(self.attn_u(h))).squeeze(-1)  # [B, K]
        score = score.masked_fill(~mask, float("-inf"))
        a = torch.softmax(score, dim=1)  # [B, K]; padded instances get exactly 0
        z = torch.einsum("bk,bkl->bl", a, h)  # [B, L]
        return self.classify(z), a


def _pad(bags: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    k_max = max(len(b) for b in bags)
    x = np.zeros((len(bags), k_max, bags[0].shape[1]), np.float32)
    mask = np.zeros((len(bags), k_max), bool)
    for i, b in enumerate(bags):
        x[i, : len(b)] = b
        mask[i, : len(b)] = True
    return torch.from_numpy(x), torch.from_numpy(mask)


@dataclass
class AttentionMIL:
    """A fitted gated-attention MIL head; inputs are raw latents, standardised inside.

    Attributes
    ----------
    module : the torch module (eval mode, CPU).
    x_mean, x_scale : float32 [d], the training instances' mean and standard deviation.
    n_classes : number of bag classes (class indices 0..n_classes-1).
    """

    module: GatedAttention
    x_mean: np.ndarray
    x_scale: np.ndarray
    n_classes: int

    def _forward(self, bag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bag = np.asarray(bag, np.float32)
        if bag.ndim != 2 or bag.shape[1] != len(self.x_mean) or not len(bag):
            raise ShapeError(f"a bag must be float [K >= 1, {len(self.x_mean)}]; received {list(bag.shape)}")
        x = torch.from_numpy((bag - self.x_mean) / self.x_scale)[None]  # [1, K, d]
        with torch.no_grad():
            logits, a = self.module(x, torch.ones(x.shape[:2], dtype=torch.bool))
        return torch.softmax(logits, dim=1)[0].double().numpy(), a[0].double().numpy()

    def predict_proba(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities float64 ``[B, n_classes]``, one bag at a time (no padding, all instances)."""
        return np.stack([self._forward(b)[0] for b in bags]) if len(bags) else np.zeros((0, self.n_classes))

    def attention(self, bag: np.ndarray) -> np.ndarray:
        """Attention weights float64 ``[K]`` (non-negative, sum 1) of one bag's instances."""
        return self._forward(bag)[1]


def fit_attention_mil(
    bags: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    n_classes: int,
    *,
    hidden: int = 64,
    attention: int = 32,
    epochs: int = 60,
    batch_bags: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    max_instances: int = 512,
    seed: int = 0,
) -> AttentionMIL:
    """Fit a gated-attention MIL head on bags of latents.

    Parameters
    ----------
    bags : float ``[K_i, d]`` arrays, one per bag (slide); K_i may differ.
    labels : int ``[B]`` class index of each bag, in ``0..n_classes-1``.
    epochs, batch_bags, lr, weight_decay : Adam on class-balanced cross-entropy, ``batch_bags``
        padded bags per step.
    max_instances : per epoch, a bag with more instances is represented by a random subset of
        this many (bounded memory on large slides; every instance is used at prediction).
    seed : every random draw (initialisation, order, subsets, dropout) comes from it; the global
        torch RNG state is left as it was.

    Raises
    ------
    ConfigError
        Fewer than two bags, a label out of range, an empty bag or bags of different widths.
    """
    y = np.asarray(labels, np.int64)
    if len(bags) < 2 or len(y) != len(bags):
        raise ConfigError(f"attention MIL needs >= 2 bags with one label each; received {len(bags)} bags, {len(y)} labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise ConfigError(f"bag labels must lie in 0..{n_classes - 1}; received {sorted(set(y.tolist()))}")
    arrays = [np.asarray(b, np.float32) for b in bags]
    dims = {b.shape[1] if b.ndim == 2 else -1 for b in arrays}
    if len(dims) != 1 or -1 in dims or any(len(b) == 0 for b in arrays):
        raise ConfigError(f"bags must be non-empty float [K, d] arrays of one width d; received widths {sorted(dims)}")
    stacked = np.concatenate(arrays)
    x_mean = stacked.mean(0)
    x_scale = stacked.std(0)
    x_scale[x_scale < 1e-8] = 1.0
    arrays = [(b - x_mean) / x_scale for b in arrays]

    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = GatedAttention(arrays[0].shape[1], n_classes, hidden=hidden, attention=attention)
        opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float32))
        module.train()
        for _ in range(epochs):
            order = rng.permutation(len(arrays))
            for start in range(0, len(order), batch_bags):
                chosen = order[start : start + batch_bags]
                batch = []
                for i in chosen:
                    b = arrays[i]
                    if len(b) > max_instances:
                        b = b[np.sort(rng.choice(len(b), max_instances, replace=False))]
                    batch.append(b)
                x, mask = _pad(batch)
                logits, _ = module(x, mask)
                loss = loss_fn(logits, torch.from_numpy(y[chosen]))
                opt.zero_grad()
                loss.backward()
                opt.step()
        module.eval()
    return AttentionMIL(module=module, x_mean=x_mean.astype(np.float32), x_scale=x_scale.astype(np.float32),
                        n_classes=n_classes)
