"""Hostile inputs to `attnlab train vit --data-dir FOLDER` (train/<class>/*.png): a decompression
bomb, images far larger than any model uses, a training set of one class, an empty class folder.

Each must give one `error: ...` line and exit code 2, or a `warning: ...` line and a normal run,
never a traceback.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from attnlab.cli import main
from attnlab.data import image_folder
from attnlab.data.image_folder import load_image_folder
from attnlab.errors import AttnlabError


def png_header(width, height):
    """A 45-byte PNG that claims width x height RGB pixels: Pillow reads the size from its header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def make_folder(root, classes=("cat", "dog"), per_class=3, empty=()):
    """root/{train,test}/<class>/<i>.png, 8x8 random pixels; the classes in `empty` get no training images."""
    from PIL import Image

    g = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            if split == "train" and name in empty:
                continue
            for i in range(per_class):
                Image.fromarray(g.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def train_vit(root, out, *extra):
    return main(["train", "vit", "--preset", "tiny", "--data-dir", str(root), "--out", str(out),
                 "--set", "data.val_size=2", "--set", "train.max_steps=1", "--no-progress", *extra])


def test_decompression_bomb_is_refused_naming_file_and_size(tmp_path, run_cli):
    root = make_folder(tmp_path / "imgs")
    bomb = root / "train" / "dog" / "huge.png"
    bomb.write_bytes(png_header(30000, 30000))  # 45 bytes claiming 900 megapixels
    rc, err = run_cli(lambda: train_vit(root, tmp_path / "run"))
    assert rc == 2
    assert err == (f"error: image '{bomb}' is 900,000,000 pixels (900 megapixels), more than the 67 megapixels "
                   "attnlab decodes (the model uses 32x32); shrink it or delete it\n")


def test_image_over_the_limit_is_refused_before_decoding(tmp_path):
    root = make_folder(tmp_path / "imgs")
    big = root / "test" / "cat" / "big.png"
    big.write_bytes(png_header(9000, 9000))  # under Pillow's limits, over ours; no pixel data at all
    with pytest.raises(AttnlabError, match="is 9000x9000 pixels") as e:
        load_image_folder(root, 32)
    assert str(e.value) == (f"image '{big}' is 9000x9000 pixels (81 megapixels), more than the 67 megapixels "
                            "attnlab decodes (the model uses 32x32); shrink it or delete it")
    assert 8192 * 8192 == image_folder.MAX_PIXELS


def test_one_class_folder_is_refused(tmp_path, run_cli):
    root = make_folder(tmp_path / "imgs", classes=("cat",))
    rc, err = run_cli(lambda: train_vit(root, tmp_path / "run"))
    assert rc == 2
    assert err == (f"error: '{root}/train' needs at least two class sub-folders, found 1 (cat); put each class's "
                   f"images in its own sub-folder, e.g. {root}/train/cat/ and {root}/train/dog/\n")


def test_one_class_with_images_beside_an_empty_one_is_refused(tmp_path, run_cli):
    root = make_folder(tmp_path / "imgs", empty=("dog",))
    rc, err = run_cli(lambda: train_vit(root, tmp_path / "run"))
    assert rc == 2
    assert err == (f"error: only the class folder 'cat' of '{root}/train' holds images, so there is nothing to "
                   "learn; a classifier needs images in at least two classes: add images to dog\n")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_empty_class_folder_is_a_warning(tmp_path, run_cli):
    root = make_folder(tmp_path / "imgs", classes=("bird", "cat", "dog"), empty=("bird",))
    rc, err = run_cli(lambda: train_vit(root, tmp_path / "run"))
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: the class folder(s) bird of '{root}/train' hold no images; the model will "
                        "never predict them (add images, or remove the folders)"]


def test_an_image_size_the_memory_cannot_hold_is_refused_before_resizing(tmp_path, run_cli):
    """model.image_size=1048576 made Pillow's resize raise MemoryError: the resized images are counted first."""
    root = make_folder(tmp_path / "imgs")
    code, err = run_cli(lambda: train_vit(root, tmp_path / "r", "--set", "model.image_size=1048576",
                                          "--set", "model.patch_size=1024"))
    assert code == 2 and "images of" in err and "at 1048576x1048576 needs about" in err
    assert "lower model.image_size (the images are resized to it)" in err and not (tmp_path / "r").exists()
