"""Image data sets as uint8 tensors, augmentation as batched tensor operations, and the batches.

No torchvision: a random crop is one gather, a flip one `torch.where`, so augmentation runs on
whatever device the batch lives on. `ImageBatches` keeps a whole data set as a single uint8
tensor on the training device (the GPU when there is one; CIFAR-10 is 150 MB) and augments
there, so no data loader workers or host-to-device copies are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F

from attnlab.engine.batches import epoch_generator, shard

# Per-channel statistics of the CIFAR-10 training images, used to normalise every image set.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class ImageSet(NamedTuple):
    """Images as uint8 (N, 3, H, W), labels as int64 (N,), and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def subset(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index], self.classes)


def split(data: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Carve a validation set of `val_size` images out of `data` with a seeded shuffle."""
    perm = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[val_size:]), data.subset(perm[:val_size])


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
    """Zero a `size` x `size` square (clipped at the border) at a random centre of each image."""
    if size <= 0:
        return x
    B, _, H, W = x.shape
    cy = torch.randint(0, H, (B,), generator=generator).to(x.device)
    cx = torch.randint(0, W, (B,), generator=generator).to(x.device)
    ys = torch.arange(H, device=x.device)[None, :]  # (1, H)
    xs = torch.arange(W, device=x.device)[None, :]  # (1, W)
    inside_y = (ys - cy[:, None]).abs() <= size // 2  # (B, H)
    inside_x = (xs - cx[:, None]).abs() <= size // 2  # (B, W)
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


class ImageBatches:
    """`Batches` over an `ImageSet` held as one tensor on `device`; batches are augmented there.

    Yields ``{"images": float32 (B, 3, H, W), "labels": int64 (B,)}``. Each epoch's order and
    augmentation depend only on (seed, epoch), so a resumed run sees exactly the same batches.
    ``batch_size`` is the global batch; under DDP each of the ``world`` ranks takes its
    contiguous slice of every batch (the engine's convention).
    """

    def __init__(self, data: ImageSet, batch_size: int, *, augment: Augment | None = None,
                 shuffle: bool = False, drop_last: bool = False, device: str | torch.device = "cpu"):
        assert batch_size > 0, f"batch_size must be positive, got {batch_size}"
        self.images = data.images.to(device)  # (N, 3, H, W) uint8, resident on the device
        self.labels = data.labels.to(device)
        self.classes = data.classes
        self.batch_size, self.augment = batch_size, augment
        self.shuffle, self.drop_last = shuffle, drop_last

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=epoch_generator(epoch, seed)) if self.shuffle else torch.arange(n)
        # A separate stream per rank for the augmentation draws, derived from (seed, epoch) only.
        aug_gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 65_537 + rank + 1)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if len(idx) < world:
                return
            idx = shard(idx, rank, world).to(self.labels.device)
            images = self.images[idx]  # (B, 3, H, W) uint8
            x = self.augment(images, aug_gen) if self.augment is not None else normalize(images)
            yield {"images": x, "labels": self.labels[idx]}
