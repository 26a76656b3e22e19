"""Your own images: ``ROOT/train/<class>/*.png|jpg`` and ``ROOT/test/<class>/...`` via Pillow.

Class names are the sub-folder names of ``train/`` in sorted order; ``test/`` must use the same
names. Every image is converted to RGB and resized (bilinear) to ``image_size`` x ``image_size``
if it has another size, and the whole set is kept as one uint8 tensor (`ImageSet`).

An image of more than :data:`MAX_PIXELS` pixels is refused from its header, before it is
decoded (a small file can claim 30000 x 30000 pixels and need gigabytes once decoded). Training
needs images in at least two classes; an empty class folder beside them is a warning, on the
training side and on the test side.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from attnlab.data.image_set import ImageSet
from attnlab.errors import AttnlabError

EXTENSIONS = (".png", ".jpg", ".jpeg")
# 8192 x 8192: 192 MiB once decoded to RGB, far more than any image_size a model is trained at,
# and below Pillow's own limits (a warning at 89.5 megapixels, an error at twice that).
MAX_PIXELS = 8192 * 8192


def is_image_folder(path: str | Path) -> bool:
    return (Path(path) / "train").is_dir()


def _too_large(file: Path, size: str, pixels: int, image_size: int) -> AttnlabError:
    return AttnlabError(f"image '{file}' is {size} ({pixels / 1e6:.0f} megapixels), more than the "
                        f"{MAX_PIXELS / 1e6:.0f} megapixels attnlab decodes (the model uses "
                        f"{image_size}x{image_size}); shrink it or delete it")


def _read_image(file: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (image_size, image_size, 3); its size is checked before it is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is stricter
            with Image.open(file) as im:  # reads the header only
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise _too_large(file, f"{w}x{h} pixels", w * h, image_size)
                im = im.convert("RGB")
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.uint8)  # (H, W, 3)
    except Image.DecompressionBombError as exc:  # Pillow refuses twice its limit before we see the size
        m = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(m.group(1)) if m else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise _too_large(file, f"{pixels:,} pixels", pixels, image_size) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise AttnlabError(f"cannot read image '{file}' ({exc}); delete or replace it") from None


def _load_split(folder: Path, classes: tuple[str, ...], image_size: int) -> ImageSet:
    from attnlab.memory import require

    listed = [sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in EXTENSIONS) for name in classes]
    count = sum(len(files) for files in listed)
    # each image held at image_size, then all of them stacked: twice the images' bytes at the peak
    require(2 * count * 3 * image_size**2, what=f"{count:,} images of {folder} at {image_size}x{image_size}",
            fix="lower model.image_size (the images are resized to it)")
    images, labels = [], []
    for label, files in enumerate(listed):
        for file in files:
            images.append(_read_image(file, image_size))
            labels.append(label)
    if not images:
        raise AttnlabError(f"no .png/.jpg images under '{folder}/<class>/'; put each class's images in "
                           f"its own sub-folder")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    return ImageSet(x, torch.tensor(labels, dtype=torch.long), classes)


def _check_classes(train: ImageSet, train_dir: Path) -> None:
    """Refuse a training set with images in one class only; warn about empty class folders."""
    counts = torch.bincount(train.labels, minlength=len(train.classes)).tolist()
    empty = [name for name, n in zip(train.classes, counts) if n == 0]
    if len(empty) == len(train.classes) - 1:
        (only,) = [name for name, n in zip(train.classes, counts) if n > 0]
        raise AttnlabError(f"only the class folder '{only}' of '{train_dir}' holds images, so there is nothing "
                           f"to learn; a classifier needs images in at least two classes: add images to "
                           f"{', '.join(empty)}")
    if empty:
        print(f"warning: the class folder(s) {', '.join(empty)} of '{train_dir}' hold no images; the model "
              "will never predict them (add images, or remove the folders)", file=sys.stderr)


def load_image_folder(path: str | Path, image_size: int = 32) -> tuple[ImageSet, ImageSet]:
    """Load (train, test) image sets from ``path/train/<class>/`` and ``path/test/<class>/``."""
    root = Path(path)
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise AttnlabError(f"'{root}' is not an image folder: expected {root}/train/<class>/*.png|jpg and "
                           f"{root}/test/<class>/...")
    classes = tuple(sorted(p.name for p in train_dir.iterdir() if p.is_dir()))
    if len(classes) < 2:
        found = f" ({', '.join(classes)})" if classes else ""
        raise AttnlabError(f"'{train_dir}' needs at least two class sub-folders, found {len(classes)}{found}; "
                           f"put each class's images in its own sub-folder, e.g. {train_dir}/cat/ and "
                           f"{train_dir}/dog/")
    unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise AttnlabError(f"test classes {unknown} do not appear in '{train_dir}'; use the same class folders")
    train = _load_split(train_dir, classes, image_size)
    _check_classes(train, train_dir)
    test = _load_split(test_dir, classes, image_size)
    _warn_untested(test, test_dir)
    return train, test


def _warn_untested(test: ImageSet, test_dir: Path) -> None:
    """Warn about classes without test images (an empty or missing ``test/<class>/``), as the
    training side does: the test accuracy says nothing about them."""
    counts = torch.bincount(test.labels, minlength=len(test.classes)).tolist()
    empty = [name for name, n in zip(test.classes, counts) if n == 0]
    if empty:
        print(f"warning: the class folder(s) {', '.join(empty)} of '{test_dir}' hold no images; the test "
              "accuracy says nothing about them (add images, or remove the classes)", file=sys.stderr)
