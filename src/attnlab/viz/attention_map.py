"""Where does a ViT look? The class token's attention to the patches, drawn over the images.

Two summaries of the per-layer attention weights (B, H, T, T), token 0 being the class token:

* ``cls_attention``: row 0 of every layer's weights, averaged over heads and layers;
* ``attention_rollout`` (Abnar & Zuidema, 2020): each layer's head-averaged weights, with the
  residual connection accounted for as ``0.5 * A + 0.5 * I``, multiplied through the layers,
  which follows how information from each patch reaches the class token across the stack.

Either gives one score per patch; `upsample` turns the patch grid into an image-sized map and
`save_grid` overlays the maps on the images in one labelled figure (matplotlib, Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.files import writing_atomically

CELL_INCHES = 2.0  # each image and each overlay is CELL_INCHES wide, CELL_INCHES * 1.25 tall (room for titles)
COLORBAR_INCHES = 0.8  # the strip on the right holding the colour bar
DPI = 100


def cls_attention(attentions: list[Tensor]) -> Tensor:
    """Class-token attention to each patch, averaged over heads and layers: (B, T - 1)."""
    stacked = torch.stack([a[:, :, 0, 1:] for a in attentions])  # (L, B, H, T-1)
    return stacked.float().mean(dim=(0, 2))  # (B, T-1)


def attention_rollout(attentions: list[Tensor]) -> Tensor:
    """Attention rollout from the class token to each patch: (B, T - 1)."""
    B, _, T, _ = attentions[0].shape
    eye = torch.eye(T, device=attentions[0].device)
    rollout = eye.expand(B, T, T)
    for a in attentions:
        a = 0.5 * a.float().mean(dim=1) + 0.5 * eye  # (B, T, T): heads averaged, residual added
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout  # (B, T, T): later layers apply after earlier ones
    return rollout[:, 0, 1:]  # (B, T-1)


def upsample(scores: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Patch scores (B, rows * cols) -> maps (B, H, W) in [0, 1], bilinearly upsampled."""
    B = scores.shape[0]
    maps = scores.reshape(B, 1, *grid)  # (B, 1, rows, cols)
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def grid_shape(n: int, cols: int = 5) -> tuple[int, int]:
    """(rows, cols) of the panel grid for n images."""
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def figure_pixels(n: int, cols: int = 5) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that `save_grid` writes for n images (``cols`` image
    pairs per row, and the colour-bar strip)."""
    rows, cols = grid_shape(n, cols)
    return round((2 * cols * CELL_INCHES + COLORBAR_INCHES) * DPI), round(rows * CELL_INCHES * 1.25 * DPI)


def _translucent(name: str = "inferno") -> Any:
    """A colour map whose low values are transparent, so the image shows where attention is low."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    colours = colormaps[name](np.linspace(0, 1, 256))
    colours[:, 3] = np.linspace(0.05, 0.85, 256)  # alpha grows with the attention
    return ListedColormap(colours)


def grid_figure(images: Tensor, maps: Tensor, titles: list[str], *, colors: list[str] | None = None,
                cols: int = 5, suptitle: str | None = None) -> Any:
    """Each of the uint8 ``images`` (B, 3, H, W) beside its attention ``maps`` (B, H, W, in [0, 1])
    laid over it in a translucent colour map, with a labelled colour bar: a matplotlib ``Figure`` of
    its own, outside pyplot (no backend is chosen; a notebook displays it, ``savefig`` writes it)."""
    from matplotlib.figure import Figure

    n = images.shape[0]
    rows, cols = grid_shape(n, cols)
    width, height = figure_pixels(n, cols)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    grid = fig.add_gridspec(rows, 2 * cols + 1, width_ratios=[CELL_INCHES] * (2 * cols) + [COLORBAR_INCHES])
    cmap, shown = _translucent(), None
    for i in range(n):
        r, c = divmod(i, cols)
        picture = images[i].permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
        left, right = fig.add_subplot(grid[r, 2 * c]), fig.add_subplot(grid[r, 2 * c + 1])
        left.imshow(picture)
        right.imshow(picture)
        shown = right.imshow(maps[i].cpu().numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="bilinear")
        left.set_title(titles[i], fontsize=8, color=(colors[i] if colors else "black"))
        right.set_title("attention", fontsize=8)
        left.axis("off")
        right.axis("off")
    if shown is not None:
        bar = fig.colorbar(shown, cax=fig.add_subplot(grid[:, -1]))
        bar.set_label("attention (scaled to [0, 1] per image)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def save_grid(images: Tensor, maps: Tensor, titles: list[str], out: str | Path, *, colors: list[str] | None = None,
              cols: int = 5, suptitle: str | None = None) -> Path:
    """:func:`grid_figure` written to one PNG (atomically)."""
    fig = grid_figure(images, maps, titles, colors=colors, cols=cols, suptitle=suptitle)
    with writing_atomically(out) as f:
        fig.savefig(f, dpi=DPI, format="png")
    return Path(out)
