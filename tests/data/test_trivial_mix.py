"""TrivialAugment, mixup, cutmix and stochastic depth do what they say."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.data.augment import FILL, TRIVIAL_OPS, _affine, _blend, mix, trivial_augment
from attnlab.layers import DropPath, Transformer


def images(b=8, seed=0):
    return torch.randint(0, 256, (b, 3, 16, 16), generator=torch.Generator().manual_seed(seed)).float()


def test_identity_and_determinism():
    x = images()
    assert torch.equal(trivial_augment(x, torch.Generator().manual_seed(0), ops=("identity",)), x)
    a = trivial_augment(x, torch.Generator().manual_seed(1))
    b = trivial_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and 0 <= a.min() and a.max() <= 255


def test_each_image_draws_its_own_operation():
    x = images(b=1).expand(64, -1, -1, -1)  # 64 copies of one image
    out = trivial_augment(x, torch.Generator().manual_seed(0))
    distinct = {tuple(o.flatten()[:50].tolist()) for o in out}
    assert len(distinct) > 8  # 13 operations with random magnitudes: many different results


def test_translation_moves_pixels_exactly_and_fills_the_gap():
    x = images(b=1)
    theta = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, 0.0]]])  # sample 3 pixels to the right
    out = _affine(x, theta)
    assert torch.equal(out[..., :-3], x[..., 3:])  # content shifted left by 3 columns
    assert torch.all(out[..., -3:] == FILL)


def test_rotation_by_a_quarter_turn_is_rot90():
    x = images(b=1)
    theta = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])  # cos 90, -sin 90 / sin 90, cos 90
    assert torch.equal(_affine(x, theta), torch.rot90(x, k=1, dims=(2, 3)))


def test_solarize_inverts_the_pixels_above_a_threshold():
    x = images(b=16)
    y = trivial_augment(x, torch.Generator().manual_seed(3), ops=("solarize",))
    changed = 0
    for xi, yi in zip(x, y):
        inverted = yi != xi
        assert torch.all(yi[inverted] == 255 - xi[inverted])  # a pixel is kept or inverted, nothing else
        kept = ~inverted & (xi != 255 - xi)
        if inverted.any() and kept.any():  # one threshold: every inverted pixel is brighter than every kept one
            assert xi[inverted].min() > xi[kept].max()
        changed += int(inverted.any())
    assert changed > 8


def test_autocontrast_stretches_each_channel_to_the_full_range():
    x = images(b=4) * 0.5 + 40  # values in [40, 167.5]
    y = trivial_augment(x, torch.Generator().manual_seed(3), ops=("autocontrast",))
    assert torch.allclose(y.amin(dim=(2, 3)), torch.zeros(4, 3), atol=1e-4)
    assert torch.allclose(y.amax(dim=(2, 3)), torch.full((4, 3), 255.0), atol=1e-3)


# Posterize keeps the top `bits` of each 8-bit value, i.e. clears the low 8 - bits ("shift") bits.
# Written out by hand for three pixel values, for every shift that TrivialAugment's wide range
# can draw (2..8 bits kept, shift 0..6):
POSTERIZED = {  # shift: (0b11111111, 0b10110111, 0b01101101) with the low `shift` bits cleared
    0: (0b11111111, 0b10110111, 0b01101101),
    1: (0b11111110, 0b10110110, 0b01101100),
    2: (0b11111100, 0b10110100, 0b01101100),
    3: (0b11111000, 0b10110000, 0b01101000),
    4: (0b11110000, 0b10110000, 0b01100000),
    5: (0b11100000, 0b10100000, 0b01100000),  # 3 bits kept: 0b10110111 -> 0b10100000
    6: (0b11000000, 0b10000000, 0b01000000),
}


def test_posterize_keeps_the_top_bits():
    pixels = torch.tensor([0b11111111, 0b10110111, 0b01101101], dtype=torch.float32)  # 255, 183, 109
    x = pixels.repeat(256).view(1, 3, 16, 16).expand(32, -1, -1, -1)  # the three values, over and over
    y = trivial_augment(x, torch.Generator().manual_seed(4), ops=("posterize",))
    assert POSTERIZED[5][1] == 160 and POSTERIZED[2] == (252, 180, 108)  # the table, in decimal
    shifts = []
    for yi in y:
        top = yi.flatten()[0].item()  # 255 posterized: 256 - 2**shift tells the shift
        shift = next((s for s, row in POSTERIZED.items() if row[0] == top), None)
        assert shift is not None, f"255 became {top}: not 255 with its low bits cleared"
        assert torch.equal(yi, torch.tensor(POSTERIZED[shift], dtype=torch.float32).repeat(256).view(3, 16, 16))
        shifts.append(shift)
    assert min(shifts) >= 0 and max(shifts) <= 6  # 2..8 bits kept
    assert sum(s > 0 for s in shifts) >= 24  # 6 of the 7 magnitudes really posterize
    assert set(shifts) == set(range(7))  # the magnitude is drawn per image: seed 4 draws every one


def test_blend_factor_one_is_identity_and_zero_is_the_other_image():
    x, other = images(b=2), images(b=2, seed=1)
    assert torch.equal(_blend(x, other, torch.ones(2)), x)
    assert torch.equal(_blend(x, other, torch.zeros(2)), other)


def test_mixup_blends_images_and_targets_with_the_same_lambda():
    x = torch.arange(16.0).view(16, 1, 1, 1).expand(16, 3, 4, 4).contiguous()  # image i is filled with i
    labels = torch.arange(16)  # class i: the targets tell each image's partner
    mixed, targets = mix(x, labels, 16, mixup=1.0, cutmix=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(targets.sum(1), torch.ones(16))
    lams = set()
    for i in range(16):
        lam = targets[i, i].item()
        others = [j for j in range(16) if j != i and targets[i, j] > 0]
        partner = others[0] if others else i
        lams.add(round(lam, 6) if others else None)
        assert mixed[i, 0, 0, 0].item() == pytest.approx(lam * i + (1 - lam) * partner)
    assert len(lams - {None}) == 1  # one lambda for the whole batch


def test_cutmix_target_weight_equals_the_pasted_area():
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 32, 32).contiguous()  # image i is filled with i
    labels = torch.arange(8)  # class i: a pasted pixel's value names its image and its class
    areas = []
    for seed in range(8):
        mixed, targets = mix(x, labels, 8, mixup=0.0, cutmix=1.0, generator=torch.Generator().manual_seed(seed))
        boxes = []
        for i in range(8):
            pasted = mixed[i] != i  # (3, 32, 32)
            assert torch.equal(pasted, pasted[:1].expand_as(pasted))  # all three channels pasted alike
            pasted = pasted[0]
            if not pasted.any():  # the shuffle paired image i with itself: nothing changes
                assert torch.equal(targets[i], F.one_hot(labels[i], 8).float())
                continue
            rows, cols = pasted.any(1), pasted.any(0)
            assert torch.equal(pasted, rows[:, None] & cols[None, :])  # one rectangle
            partner = int(mixed[i, 0][pasted][0])
            assert partner != i and torch.all(mixed[i][:, pasted] == partner)  # from one other image
            area = int(pasted.sum())
            assert area > 0
            want = torch.zeros(8)
            want[i], want[partner] = 1 - area / 1024, area / 1024  # exact in float32 (k / 2**10)
            assert torch.equal(targets[i], want)  # the partner's weight IS the pasted area fraction
            boxes.append((rows.nonzero().flatten().tolist(), cols.nonzero().flatten().tolist()))
        assert boxes and all(b == boxes[0] for b in boxes)  # one box for the whole batch, never empty
        areas.append(len(boxes[0][0]) * len(boxes[0][1]))
    assert len(set(areas)) == len(areas)  # each seed draws its own box size


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    dp = DropPath(0.25).train()
    y = dp(torch.ones(4000, 3, 5))
    per_sample = y[:, 0, 0]
    assert per_sample.unique().tolist() == pytest.approx([0.0, 1 / 0.75])  # all-or-nothing per sample
    assert torch.all(y == per_sample[:, None, None])
    assert (per_sample == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.equal(dp.eval()(torch.ones(3, 2)), torch.ones(3, 2))


def test_stochastic_depth_grows_linearly_with_depth():
    model = Transformer(8, 4, 16, 2, 5, drop_path=0.2)
    rates = [0.0 if b.drop_path is None else b.drop_path.p for b in model.layers]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert len(TRIVIAL_OPS) == 13
