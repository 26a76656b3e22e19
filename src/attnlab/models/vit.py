"""Vision Transformer (Dosovitskiy et al., 2020): an image as a sequence of patch tokens.

    image (B, 3, H, W) -> [conv stem] -> PatchEmbed -> tokens (B, N, dim)
    -> prepend class token, add learned positions -> Transformer (pre-norm) -> LayerNorm
    -> MLP head on the class token -> logits (B, num_classes)

The optional convolutional stem (``stem_channels``) is the Compact Convolutional Transformer
idea (Hassani et al., 2021): a few 3x3 convolutions, each followed by a 2x down-sampling, give the
tokens local structure, which lets a small Transformer learn CIFAR-10 in minutes instead of
hours. With an empty stem the model is the plain ViT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.errors import AttnlabError
from attnlab.layers import Transformer
from attnlab.models.configs import ViTConfig
from attnlab.positional import LearnedPositionalEmbedding, interpolate_pos_2d


def pair(x: int | tuple[int, int]) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (x[0], x[1])


class PatchEmbed(nn.Module):
    """Cut an image into non-overlapping ``patch_size`` patches and project each to ``embed_dim``.

    A convolution with kernel = stride = patch size is exactly "flatten each patch, multiply by
    one shared matrix" (tested equal to unfold + linear). (3, 32, 32) with 4x4 patches ->
    64 tokens, each made from 3 * 4 * 4 = 48 values.
    """

    def __init__(self, image_size: int | tuple[int, int], patch_size: int | tuple[int, int],
                 in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.image_size, self.patch_size = pair(image_size), pair(patch_size)
        self.grid = self.grid_for(self.image_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def grid_for(self, size: tuple[int, int]) -> tuple[int, int]:
        """Patch grid (rows, cols) of an input of `size` (H, W); an error if it does not divide."""
        (h, w), (ph, pw) = size, self.patch_size
        if h % ph or w % pw:
            raise AttnlabError(f"image size {h}x{w} is not divisible by the patch size {ph}x{pw}; resize "
                               f"the images or choose a patch size that divides them")
        return h // ph, w // pw

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, (H / p) * (W / p), embed_dim), patches in row-major order."""
        self.grid_for((x.shape[-2], x.shape[-1]))
        x = self.proj(x)  # (B, embed_dim, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, embed_dim)


class ConvStem(nn.Module):
    """``len(channels)`` blocks of Conv3x3 -> BatchNorm -> GELU -> MaxPool(3, stride 2)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(in_channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.GELU(), nn.MaxPool2d(3, stride=2, padding=1)]
            in_channels = out
        self.net = nn.Sequential(*layers)
        self.out_channels, self.reduction = in_channels, 2 ** len(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C_out, H / reduction, W / reduction)


class VisionTransformer(nn.Module):
    """ViT classifier. ``forward(x)`` maps float images (B, C, H, W) to logits (B, classes)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.stem = ConvStem(c.in_channels, tuple(c.stem_channels)) if c.stem_channels else None
        reduction = self.stem.reduction if self.stem is not None else 1
        channels = self.stem.out_channels if self.stem is not None else c.in_channels
        if c.image_size % reduction:
            raise AttnlabError(f"image size {c.image_size} is not divisible by the stem's down-sampling "
                               f"{reduction}; use fewer stem layers or another image size")
        self.patch_embed = PatchEmbed(c.image_size // reduction, c.patch_size, channels, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = LearnedPositionalEmbedding(max_len=1 + self.patch_embed.num_patches, dim=c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.transformer = Transformer(c.dim, c.head_dim, c.mlp_dim, c.num_heads, c.num_layers,
                                       dropout=c.dropout, attn_dropout=c.attn_dropout, drop_path=c.drop_path,
                                       activation=c.activation, norm_eps=c.norm_eps)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.head: nn.Module
        if c.head_hidden:
            self.head = nn.Sequential(nn.Linear(c.dim, c.head_hidden), nn.GELU(),
                                      nn.Linear(c.head_hidden, c.num_classes))
        else:
            self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(self._init)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def grid_for(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """Patch grid of an input image of size (H, W)."""
        r = self.stem.reduction if self.stem is not None else 1
        if image_hw[0] % r or image_hw[1] % r:
            raise AttnlabError(f"image size {image_hw[0]}x{image_hw[1]} is not divisible by the stem's "
                               f"down-sampling {r}; resize the images")
        return self.patch_embed.grid_for((image_hw[0] // r, image_hw[1] // r))

    def positions(self, grid: tuple[int, int]) -> Tensor:
        """Position vectors (1 + rows * cols, dim): class token first, then the (resized) grid."""
        pos = self.pos_embed.weight  # (1 + N_train, dim)
        if tuple(grid) == self.patch_embed.grid:
            return pos
        patches = interpolate_pos_2d(pos[1:], self.patch_embed.grid, grid)  # (rows * cols, dim)
        return torch.cat([pos[:1], patches])

    def forward_features(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> normalised tokens (B, 1 + N, dim)."""
        return self._features(x, need_weights=False)[0]

    def resized(self, x: Tensor) -> Tensor:
        """``x`` (B, C, H, W) resized to (B, C, image_size, image_size) when ``config.resize_inputs``."""
        size = self.config.image_size
        if not self.config.resize_inputs or tuple(x.shape[-2:]) == (size, size):
            return x
        return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False).to(x.dtype)

    def _features(self, x: Tensor, *, need_weights: bool) -> tuple[Tensor, list[Tensor] | None]:
        x = self.resized(x)
        grid = self.grid_for((x.shape[-2], x.shape[-1]))
        x = x.contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
        if self.stem is not None:
            x = self.stem(x)  # (B, C', H / r, W / r)
        tokens = self.patch_embed(x)  # (B, N, dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, dim)
        tokens = torch.cat([cls, tokens], dim=1) + self.positions(grid)  # (B, 1 + N, dim)
        tokens, attentions = self.transformer(self.drop(tokens), need_weights=need_weights)
        return self.norm(tokens), attentions

    def forward_head(self, features: Tensor) -> Tensor:
        """Normalised tokens (B, 1 + N, dim) -> logits (B, num_classes) from the class token."""
        return self.head(features[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def attend(self, x: Tensor) -> Attended:
        """Logits and every layer's weights (B, H, 1 + N, 1 + N) over the class token and the patch
        grid (``grid``); ``extra["features"]`` holds the normalised tokens."""
        features, attentions = self._features(x, need_weights=True)
        shape = self.resized(x[:0]).shape  # (the grid the resized images were cut into)
        grid = self.grid_for((shape[-2], shape[-1]))
        return Attended(self.forward_head(features), attentions or [], grid=grid, extra={"features": features})
