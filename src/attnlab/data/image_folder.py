"""Your own images: ``ROOT/train/<class>/*.png|jpg`` and ``ROOT/test/<class>/...`` via Pillow.

Class names are the sub-folder names of ``train/`` in sorted order; ``test/`` must use the same
names. Every image is converted to RGB and resized (bilinear) to ``image_size`` x ``image_size``
if it has another size, and the whole set is kept as one uint8 tensor (`ImageSet`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attnlab.data.images import ImageSet
from attnlab.errors import AttnlabError

EXTENSIONS = (".png", ".jpg", ".jpeg")


def is_image_folder(path: str | Path) -> bool:
    return (Path(path) / "train").is_dir()


def _load_split(folder: Path, classes: tuple[str, ...], image_size: int) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in EXTENSIONS)
        for file in files:
            try:
                with Image.open(file) as im:
                    im = im.convert("RGB")
                    if im.size != (image_size, image_size):
                        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))  # (H, W, 3)
            except (UnidentifiedImageError, OSError) as exc:
                raise AttnlabError(f"cannot read image '{file}' ({exc}); delete or replace it") from None
            labels.append(label)
    if not images:
        raise AttnlabError(f"no .png/.jpg images under '{folder}/<class>/'; put each class's images in "
                           f"its own sub-folder")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    return ImageSet(x, torch.tensor(labels, dtype=torch.long), classes)


def load_image_folder(path: str | Path, image_size: int = 32) -> tuple[ImageSet, ImageSet]:
    """Load (train, test) image sets from ``path/train/<class>/`` and ``path/test/<class>/``."""
    root = Path(path)
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise AttnlabError(f"'{root}' is not an image folder: expected {root}/train/<class>/*.png|jpg and "
                           f"{root}/test/<class>/...")
    classes = tuple(sorted(p.name for p in train_dir.iterdir() if p.is_dir()))
    if len(classes) < 2:
        raise AttnlabError(f"'{train_dir}' needs at least two class sub-folders, found {len(classes)}")
    unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise AttnlabError(f"test classes {unknown} do not appear in '{train_dir}'; use the same class folders")
    return _load_split(train_dir, classes, image_size), _load_split(test_dir, classes, image_size)
