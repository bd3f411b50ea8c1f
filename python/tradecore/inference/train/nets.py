"""The torch modules of the trainers (this module imports torch: import it only to train)."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def surrogate_features(x: torch.Tensor) -> torch.Tensor:
    """From (moneyness, T, sigma, r, q, type): log-moneyness, sqrt T, sigma, r, q, type,
    sigma sqrt T and d1, the variables the kernel's outputs are smooth in."""
    m, t, v, r, q, w = x.unbind(dim=1)
    lm = torch.log(m)
    st = torch.sqrt(t)
    s = v * st
    d1 = (lm + (r - q + 0.5 * v * v) * t) / s
    return torch.stack([lm, st, v, r, q, w, s, d1], dim=1)


class SurrogateNet(nn.Module):
    """Shared SiLU layers and one small head per output. The feature standardisation and each
    head's target scale (fitted on the training set ``x``, ``y``) are buffers, so the module
    maps raw inputs to outputs in their own units."""

    f_mean: torch.Tensor
    f_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, hidden: int, layers: int, head_hidden: int
    ) -> None:
        super().__init__()
        f = surrogate_features(x)
        self.register_buffer("f_mean", f.mean(dim=0))
        self.register_buffer("f_std", f.std(dim=0).clamp_min(1e-12))
        self.register_buffer("y_mean", y.mean(dim=0))
        self.register_buffer("y_std", y.std(dim=0).clamp_min(1e-12))
        dims = [f.shape[1]] + [hidden] * layers
        shared: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            shared += [nn.Linear(a, b), nn.SiLU()]
        self.shared = nn.Sequential(*shared)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, head_hidden), nn.SiLU(), nn.Linear(head_hidden, 1))
            for _ in range(y.shape[1])
        )

    def standardized(self, inp: torch.Tensor) -> torch.Tensor:
        """The heads' outputs in standard units of the training targets, [batch, heads]."""
        z = (surrogate_features(inp) - self.f_mean) / self.f_std
        h = self.shared(z)
        return torch.cat([head(h) for head in self.heads], dim=1)

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.standardized(inp) * self.y_std + self.y_mean
        return tuple(out.unbind(dim=1))


class SignalNet(nn.Module):
    """A two-layer SiLU MLP from raw features (standardised by the training set's mean and
    standard deviation, held as buffers) to P(up)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, x: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", x.mean(dim=0))
        self.register_buffer("std", x.std(dim=0).clamp_min(1e-6))
        self.body = nn.Sequential(
            nn.Linear(x.shape[1], hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def logit(self, inp: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body((inp - self.mean) / self.std).squeeze(1)
        return out

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(inp))
