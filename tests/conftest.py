"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from attnlab.data import cifar10


def write_cifar(root: Path, per_batch: int = 10, *, seed: int = 0, named_batches: bool = False) -> Path:
    """A small ``root/cifar-10-batches-py/`` in the real format (the pickled batches, protocol 2,
    Python 2 strings): every training and test batch holds ``per_batch`` random uint8 images drawn
    in file order from one generator seeded ``seed``, labelled 0, 1, ..., 9, 0, ...

    ``named_batches`` writes each file's name as its ``batch_label`` (else ``"batch"``: only the
    bytes differ, not the data). Returns the folder.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        images = torch.randint(0, 256, (per_batch, 3, 32, 32), generator=g, dtype=torch.uint8)
        labels = (torch.arange(per_batch) % 10).tolist()
        cifar10.write_batch(folder / name, images, labels, batch_label=name if named_batches else "batch")
    return folder


@pytest.fixture(scope="session")
def make_cifar() -> Callable[..., Path]:
    """:func:`write_cifar`, for tests and fixtures of any scope: ``make_cifar(root, per_batch=10)``."""
    return write_cifar
