"""Image data sets as one uint8 tensor, their train/validation split, and batches on the device.

:func:`load_images` reads CIFAR-10 in its canonical format (:mod:`attnlab.data.cifar10`) or a
folder of your own images (:mod:`attnlab.data.image_folder`). :class:`ImageBatches` keeps a whole
data set as a single uint8 tensor on the training device (the GPU when there is one; CIFAR-10
is 150 MB) and augments there, so no data-loader workers or host-to-device copies are needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from attnlab.data import cifar10, image_folder
from attnlab.data.augment import Augment, mix, normalize
from attnlab.data.batching import TensorBatches, epoch_generator
from attnlab.data.image_set import ImageSet
from attnlab.errors import AttnlabError

__all__ = ["ImageSet", "split", "load_images", "validation_images", "ImageBatches"]


def split(data: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Carve a validation set of ``val_size`` images out of ``data`` with a seeded shuffle."""
    perm = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[val_size:]), data.subset(perm[:val_size])


def load_images(path: str | Path, image_size: int = 32) -> tuple[ImageSet, ImageSet]:
    """(train, test) from CIFAR-10 in the canonical format or from an image folder."""
    path = Path(path)
    if image_folder.is_image_folder(path):
        return image_folder.load_image_folder(path, image_size)
    if cifar10.is_cifar10(path):
        return cifar10.load_cifar10(path)
    raise AttnlabError(f"no images found at '{path}'; run `attnlab data fetch cifar10 --dest {path}`, or pass "
                       "--data-dir pointing at cifar-10-batches-py/, cifar-10-python.tar.gz, or a folder with "
                       "train/<class>/*.png and test/<class>/*.png")


def validation_images(data_dir: str | Path, *, image_size: int, val_size: int, seed: int) -> ImageSet:
    """The validation split of a run trained on ``data_dir`` with ``data.val_size`` = ``val_size``
    and ``data.split_seed`` = ``seed``: images the model never trained on, from the training files."""
    train_all, _ = load_images(data_dir, image_size)
    return split(train_all, val_size, seed)[1]


class ImageBatches(TensorBatches):
    """Batches of an :class:`ImageSet` held as one tensor on ``device``, augmented there.

    Yields ``{"images": float32 (B, 3, H, W), "labels": int64 (B,)}``, normalised. Each epoch's
    order and augmentation depend only on (seed, epoch), so a resumed run sees exactly the same
    batches; under DDP every rank draws its augmentation from its own stream.
    """

    def __init__(self, data: ImageSet, batch_size: int, *, augment: Augment | None = None,
                 shuffle: bool = False, drop_last: bool = False, device: str | torch.device = "cpu",
                 mixup: float = 0.0, cutmix: float = 0.0) -> None:
        tensors = {"images": data.images.to(device), "labels": data.labels.to(device)}  # resident on the device
        super().__init__(tensors, batch_size, shuffle=shuffle, drop_last=drop_last)
        self.classes, self.augment, self.mixup, self.cutmix = data.classes, augment, mixup, cutmix

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, Tensor]]:
        """Batches ``{"images", "labels"}``; with mixup or cutmix also ``"targets"``, the soft labels."""
        draws = epoch_generator(epoch, seed, stream=1 + rank)
        for batch in super().iter_epoch(epoch, seed, rank, world):
            images, labels = batch["images"], batch["labels"]  # (B, 3, H, W) uint8, (B,)
            x = self.augment(images, draws) if self.augment is not None else normalize(images)
            if self.mixup > 0 or self.cutmix > 0:
                x, targets = mix(x, labels, len(self.classes), mixup=self.mixup, cutmix=self.cutmix, generator=draws)
                yield {"images": x, "labels": labels, "targets": targets}
            else:
                yield {"images": x, "labels": labels}
