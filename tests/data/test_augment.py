"""The cutout augmentation: an exact size x size square of zeros, clipped at the border."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.augment import Augment, cutout, normalize


def centres(seed: int, batch: int, h: int, w: int) -> list[tuple[int, int]]:
    """The (row, column) centres cutout draws from a generator seeded ``seed``: rows, then columns."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.randint(0, h, (batch,), generator=g), torch.randint(0, w, (batch,), generator=g)
    return list(zip(rows.tolist(), cols.tolist()))


def square(cy: int, cx: int, size: int, h: int, w: int) -> torch.Tensor:
    """(h, w) bool: rows cy - size//2 .. cy - size//2 + size - 1 (and likewise columns) inside the image."""
    out = torch.zeros(h, w, dtype=torch.bool)
    top, left = cy - size // 2, cx - size // 2
    out[max(top, 0):max(top + size, 0), max(left, 0):max(left + size, 0)] = True
    return out


@pytest.mark.parametrize("size", [8, 5, 1])
def test_cutout_zeroes_exactly_the_drawn_square(size):
    B, H, W = 64, 32, 32
    x = torch.rand(B, 3, H, W) + 1.0  # no zeros to begin with
    out = cutout(x, size, torch.Generator().manual_seed(7))
    inside = 0
    for b, (cy, cx) in enumerate(centres(7, B, H, W)):
        hole = square(cy, cx, size, H, W)
        for c in range(3):  # the same square in every channel; everything else untouched
            assert torch.equal(out[b, c] == 0, hole), (b, c)
            assert torch.equal(out[b, c][~hole], x[b, c][~hole])
        top, left = cy - size // 2, cx - size // 2
        if 0 <= top and top + size <= H and 0 <= left and left + size <= W:
            inside += 1
            assert int((out[b] == 0).sum()) == 3 * size * size  # 64 pixels per channel for size 8
        else:  # clipped at the border: the rows and columns that remain
            rows = min(top + size, H) - max(top, 0)
            cols = min(left + size, W) - max(left, 0)
            assert int((out[b] == 0).sum()) == 3 * rows * cols < 3 * size * size
    assert inside > 0 and (size == 1 or inside < B)  # both cases occurred


@pytest.mark.parametrize("centre,expected", [
    # size 4 centred on the top-left pixel covers rows and columns -2..1: only 0..1 lie inside
    ((0, 0), [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]),
    # centred on the bottom-right pixel: rows and columns 1..4, of which 1..3 lie inside
    ((3, 3), [[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]),
    # centred at (2, 2): rows and columns 0..3, the whole 4 x 4 image
    ((2, 2), [[0] * 4] * 4),
])
def test_cutout_clipped_at_the_border_by_hand(centre, expected):
    seed = next(s for s in range(1000) if centres(s, 1, 4, 4) == [centre])  # a generator that draws it
    out = cutout(torch.ones(1, 3, 4, 4), 4, torch.Generator().manual_seed(seed))
    assert torch.equal(out, torch.tensor(expected, dtype=torch.float32).expand(1, 3, 4, 4))


def test_cutout_off_and_in_the_augmentation():
    x = torch.rand(4, 3, 8, 8)
    assert cutout(x, 0, torch.Generator()) is x
    images = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)
    plain = Augment(crop_padding=0, flip=False, cutout=0)(images, torch.Generator().manual_seed(1))
    assert torch.equal(plain, normalize(images))
    holed = Augment(crop_padding=0, flip=False, cutout=8)(images, torch.Generator().manual_seed(1))
    # after normalisation: zero is the data-set mean, so the square is the only difference
    changed = (holed != plain).any(1)  # (B, H, W)
    for b, (cy, cx) in enumerate(centres(1, 16, 32, 32)):
        hole = square(cy, cx, 8, 32, 32)
        assert torch.equal(holed[b][:, hole], torch.zeros(3, int(hole.sum())))
        assert not changed[b][~hole].any()
