"""CIFAR-10 (canonical pickles, directory and archive), the image-folder format, augmentation."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from attnlab.data import cifar10
from attnlab.data.augment import Augment, normalize, random_crop, random_flip
from attnlab.data.cifar10 import load_cifar10
from attnlab.data.image_folder import load_image_folder
from attnlab.data.images import ImageBatches, ImageSet, split
from attnlab.errors import AttnlabError

PER_BATCH = 12


@pytest.fixture
def cifar(make_cifar):
    """``cifar(root)``: a small cifar-10-batches-py/ in the original byte layout (protocol 2,
    Python 2 strings), PER_BATCH images a batch, each file's name as its batch_label."""
    return lambda root: make_cifar(root, PER_BATCH, named_batches=True)


def test_reads_original_byte_layout(tmp_path, cifar):
    folder = cifar(tmp_path)
    raw = (folder / "data_batch_1").read_bytes()
    assert raw[:2] == b"\x80\x02" and b"cnumpy.core.multiarray\n_reconstruct" in raw
    train, test = load_cifar10(folder)
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (PER_BATCH, 3, 32, 32)
    assert train.classes == cifar10.CLASSES and train.labels.dtype == torch.long
    # Equal to what a plain (unrestricted) unpickler reads: 1024 red, then green, then blue values.
    with open(folder / "data_batch_2", "rb") as f:
        ref = pickle.load(f, encoding="bytes")
    first = torch.from_numpy(ref[b"data"][0]).view(3, 32, 32)
    assert torch.equal(train.images[PER_BATCH], first)
    assert train.labels[PER_BATCH:2 * PER_BATCH].tolist() == ref[b"labels"]


def test_parent_dir_and_archive_give_the_same_data(tmp_path, cifar):
    folder = cifar(tmp_path / "x")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    a_train, a_test = load_cifar10(folder)
    for path in (folder.parent, archive):
        b_train, b_test = load_cifar10(path)
        assert torch.equal(a_train.images, b_train.images) and torch.equal(a_test.labels, b_test.labels)
    archive_dir = tmp_path / "only-archive"
    archive_dir.mkdir()
    archive.rename(archive_dir / "cifar-10-python.tar.gz")
    assert torch.equal(load_cifar10(archive_dir)[0].images, a_train.images)


def test_python3_protocol2_pickle_is_accepted(tmp_path, cifar):
    folder = cifar(tmp_path)
    data = np.zeros((3, 3072), np.uint8)
    data[1] = 7
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [1, 2, 3]}, protocol=2))
    _, test = load_cifar10(folder)
    assert test.labels.tolist() == [1, 2, 3] and int(test.images[1].max()) == 7


def test_truncated_batch_is_one_clear_error(tmp_path, cifar):
    folder = cifar(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[: 3000])
    with pytest.raises(AttnlabError, match="data_batch_3.*truncated or corrupted.*attnlab data fetch cifar10"):
        load_cifar10(folder)


def test_truncated_archive_is_one_clear_error(tmp_path, cifar):
    folder = cifar(tmp_path / "x")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(AttnlabError, match="cifar-10-python.tar.gz.*(truncated|lacks)"):
        load_cifar10(archive)


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "codec"])
def test_malicious_pickle_is_refused(tmp_path, cifar, payload):
    folder = cifar(tmp_path)
    marker = tmp_path / "pwned"
    if payload == "codec":  # _codecs.encode is allowed for bytes, but only with latin-1
        data = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    else:
        evil = _Evil(f"touch {marker}") if payload == "os.system" else _Eval()
        data = pickle.dumps({b"data": evil, b"labels": []}, protocol=2)
    (folder / "data_batch_1").write_bytes(data)
    with pytest.raises(AttnlabError, match="refusing to load .*data_batch_1.*not allowed"):
        load_cifar10(folder)
    assert not marker.exists()


def test_missing_data_names_the_fix(tmp_path):
    with pytest.raises(AttnlabError, match="attnlab data fetch cifar10"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttnlabError, match="data_batch_1"):
        load_cifar10(tmp_path / "empty")


def make_image_folder(root, per_class=3, size=32):
    from PIL import Image

    g = np.random.default_rng(0)
    for split_name in ("train", "test"):
        for name in ["cat", "dog"]:
            (root / split_name / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = g.integers(0, 256, (size, size, 3), dtype=np.uint8)
                ext = "jpg" if i == per_class - 1 else "png"
                Image.fromarray(pixels).save(root / split_name / name / f"{i}.{ext}")
    return root


def test_image_folder(tmp_path):
    from PIL import Image

    root = make_image_folder(tmp_path / "imgs")
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "train" / "dog" / "odd_size.png")
    train, test = load_image_folder(root, 32)
    assert train.classes == ("cat", "dog") and len(train.labels) == 7 and len(test.labels) == 6
    assert train.images.shape == (7, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    png = np.array(Image.open(root / "train" / "cat" / "0.png"))  # lossless: exact pixels
    assert torch.equal(train.images[0], torch.from_numpy(png).permute(2, 0, 1))
    assert train.images[6, 0].min() == 255 and train.images[6, 1].max() == 0  # resized red image


def test_image_folder_errors(tmp_path):
    with pytest.raises(AttnlabError, match="train/<class>"):
        load_image_folder(tmp_path)
    root = make_image_folder(tmp_path / "imgs")
    (root / "test" / "bird").mkdir()
    with pytest.raises(AttnlabError, match="bird"):
        load_image_folder(root)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop(x, 0, g), x)
    out = random_crop(x, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    gen = torch.Generator().manual_seed(1)  # the same draws random_crop made: rows, then columns
    top, left = torch.randint(0, 5, (6,), generator=gen), torch.randint(0, 5, (6,), generator=gen)
    for b in range(6):
        t, lft = int(top[b]), int(left[b])
        assert torch.equal(out[b], padded[b, :, t:t + 8, lft:lft + 8])
    flipped = random_flip(x, torch.Generator().manual_seed(3))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(2)) for f, i in zip(flipped, x))


def test_image_batches_deterministic_and_sharded():
    data = ImageSet(torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8), torch.arange(40) % 10,
                    tuple("abcdefghij"))
    batches = ImageBatches(data, 8, augment=Augment(crop_padding=2), shuffle=True)
    assert len(batches) == 5
    a = [b["images"] for b in batches.iter_epoch(3, 7)]
    b = [b["images"] for b in batches.iter_epoch(3, 7)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], next(batches.iter_epoch(4, 7))["images"])
    # two ranks see disjoint halves of every global batch
    r0 = [x["labels"] for x in ImageBatches(ImageSet(data.images, torch.arange(40), data.classes), 8,
                                            shuffle=True).iter_epoch(0, 1, 0, 2)]
    r1 = [x["labels"] for x in ImageBatches(ImageSet(data.images, torch.arange(40), data.classes), 8,
                                            shuffle=True).iter_epoch(0, 1, 1, 2)]
    assert sorted(torch.cat(r0 + r1).tolist()) == list(range(40))
    plain = next(ImageBatches(data, 4).iter_epoch(0, 0))
    assert torch.allclose(plain["images"], normalize(data.images[:4]))
    train, val = split(data, 10, seed=0)
    assert len(val.labels) == 10 and len(train.labels) == 30


def test_fetch_downloads_with_md5_and_extracts(tmp_path, cifar, monkeypatch):
    from attnlab.data import download

    folder = cifar(tmp_path / "src")
    archive = tmp_path / "served.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    calls = []

    def fake_fetch_url(url, dest, *, md5=None, sha256=None, desc=None):
        calls.append((url, md5))
        dest.write_bytes(archive.read_bytes())
        return dest

    monkeypatch.setattr(download, "fetch_url", fake_fetch_url)
    out = cifar10.fetch(tmp_path / "data")
    assert calls == [(cifar10.URL, "c58f30108f718f92721af3b95e74349a")]
    assert out == tmp_path / "data" / "cifar-10-batches-py" and len(load_cifar10(out)[1].labels) == PER_BATCH
    assert cifar10.fetch(tmp_path / "data") == out and len(calls) == 1  # already there: no download
