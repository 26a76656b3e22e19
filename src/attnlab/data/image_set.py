"""``ImageSet``: a data set of images as one uint8 tensor, its labels and its class names.

The type every image loader returns (:mod:`attnlab.data.cifar10`, :mod:`attnlab.data.image_folder`)
and :mod:`attnlab.data.images` splits and batches; on its own so that the loaders and the
pipeline that picks among them need not import each other.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["ImageSet"]


class ImageSet(NamedTuple):
    """Images as uint8 (N, 3, H, W), labels as int64 (N,), and the class names."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)
