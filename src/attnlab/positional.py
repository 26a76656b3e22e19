"""Positional information: learned (bounded), sinusoidal and rotary (both unbounded).

Attention itself is permutation-equivariant; these modules are what lets a model tell the
first token from the last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError

__all__ = [
    "LearnedPositionalEmbedding",
    "interpolate_pos_2d",
    "SinusoidalPositionalEncoding",
    "RotaryEmbedding",
]


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position, added to the input: bounded by ``max_len``.

    ``forward(x, offset=0)`` adds positions ``offset .. offset + T - 1`` to ``x`` (B, T, dim);
    going past ``max_len`` raises :class:`AttnlabError` instead of an index error.
    """

    def __init__(self, *, max_len: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        assert max_len > 0 and dim > 0, "max_len and dim must be positive"
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, dim) * init_std)  # (max_len, dim)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = x.size(1)
        if offset + T > self.max_len:
            raise AttnlabError(
                f"sequence of {offset + T} positions exceeds the maximum length {self.max_len} of "
                "this model's learned positional embedding; shorten the input (or use a sliding "
                "window), or train a model with a larger max_len"
            )
        return x + self.weight[offset : offset + T]  # (B, T, dim) + (T, dim)


def interpolate_pos_2d(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> Tensor:
    """Resize a grid of learned position vectors, e.g. for a ViT fed a different image size.

    ``pos`` is (old_h * old_w, dim), row-major over the grid; returns (new_h * new_w, dim),
    bicubically interpolated. The same grid comes back unchanged.
    """
    (oh, ow), (nh, nw) = tuple(old_grid), tuple(new_grid)
    if pos.size(0) != oh * ow:
        raise ValueError(f"pos has {pos.size(0)} rows, expected {oh}*{ow}={oh * ow} for the old grid")
    if (oh, ow) == (nh, nw):
        return pos
    dim = pos.size(1)
    grid = pos.reshape(1, oh, ow, dim).permute(0, 3, 1, 2)  # (1, dim, oh, ow)
    grid = F.interpolate(grid.float(), size=(nh, nw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(nh * nw, dim).to(pos.dtype)  # (nh*nw, dim)


def sinusoidal_table(num_positions: int, dim: int, *, offset: int = 0, base: float = 10000.0) -> Tensor:
    """``PE[p, 2i] = sin(p / base^(2i/dim))``, ``PE[p, 2i+1] = cos(...)`` for p in offset.. (float32)."""
    pos = torch.arange(offset, offset + num_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = pos * inv_freq  # (P, ceil(dim/2))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed sin/cos encoding of Vaswani et al., computed for any length (no maximum)."""

    def __init__(self, *, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.base = dim, base

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        table = sinusoidal_table(x.size(1), self.dim, offset=offset, base=self.base)
        return x + table.to(device=x.device, dtype=x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer): rotates query/key feature pairs by position-dependent
    angles so that ``q_m . k_n`` depends only on ``m - n``. No parameters, no maximum length.

    ``forward(q, k, offset=0)`` takes (..., T, head_dim) tensors whose positions start at
    ``offset`` (the number of cached positions) and returns the rotated pair.
    """

    def __init__(self, *, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        assert head_dim % 2 == 0, f"rotary embedding needs an even head_dim, got {head_dim}"
        self.head_dim, self.base = head_dim, base
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.inv_freq: Tensor
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hd/2,)

    def _cos_sin(self, start: int, length: int, like: Tensor) -> tuple[Tensor, Tensor]:
        pos = torch.arange(start, start + length, device=like.device, dtype=torch.float32)
        angles = torch.outer(pos, self.inv_freq)  # (T, hd/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, hd): pairs are (i, i + hd/2)
        return angles.cos().to(like.dtype), angles.sin().to(like.dtype)

    @staticmethod
    def _rotate_half(x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], dim=-1)

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        cos, sin = self._cos_sin(offset, q.size(-2), q)
        return q * cos + self._rotate_half(q) * sin, k * cos + self._rotate_half(k) * sin
