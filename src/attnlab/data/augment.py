"""Image augmentation as batched tensor operations, and the normalisation every image gets.

No torchvision: a random crop is one gather, a flip one `torch.where`, so augmentation runs on
whatever device the batch lives on (:class:`attnlab.data.images.ImageBatches` keeps the data
set on the training device). Every draw comes from the generator passed in, so an epoch's
augmentation is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Per-channel statistics of the CIFAR-10 training images, used to normalise every image set.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 255] float) images (B, 3, H, W) -> float32 with zero mean, unit variance."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each image by `padding` (reflection) and crop it back to its size at a random offset."""
    B, C, H, W = x.shape
    if padding <= 0:
        return x
    padded = F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)  # (B, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    rows = top[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = left[:, None] + torch.arange(W, device=x.device)  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last in memory


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability `p`."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre of each image (clipped at the border).

    The square covers rows ``cy - size // 2 .. cy - size // 2 + size - 1`` (and likewise columns),
    so it is exactly ``size`` pixels wide wherever it lies fully inside the image.
    """
    if size <= 0:
        return x
    B, _, H, W = x.shape
    top = torch.randint(0, H, (B,), generator=generator).to(x.device) - size // 2  # (B,)
    left = torch.randint(0, W, (B,), generator=generator).to(x.device) - size // 2
    ys = torch.arange(H, device=x.device)[None, :] - top[:, None]  # (B, H): row offset into the square
    xs = torch.arange(W, device=x.device)[None, :] - left[:, None]  # (B, W)
    inside_y = (ys >= 0) & (ys < size)
    inside_x = (xs >= 0) & (xs < size)
    hole = inside_y[:, :, None] & inside_x[:, None, :]  # (B, H, W)
    return x.masked_fill(hole[:, None], 0)


@dataclass
class Augment:
    """The training augmentation; every part can be switched off (0)."""

    crop_padding: int = 4  # random translation by up to this many pixels
    flip: bool = True  # random horizontal flip
    cutout: int = 0  # side of a square zeroed at a random place (after normalisation: the mean)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> augmented, normalised float32 (B, 3, H, W)."""
        x = random_crop(images, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        x = normalize(x)
        return cutout(x, self.cutout, generator)
