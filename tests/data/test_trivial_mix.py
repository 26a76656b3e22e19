"""TrivialAugment, mixup, cutmix and stochastic depth do what they say."""

from __future__ import annotations

import math

import pytest
import torch

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


def test_posterize_keeps_the_top_bits():
    x = images(b=32)
    y = trivial_augment(x, torch.Generator().manual_seed(4), ops=("posterize",))
    for xi, yi in zip(x, y):
        shift = next(s for s in range(8) if torch.equal(torch.floor(xi / 2**s) * 2**s, yi))
        assert 0 <= shift <= 7  # every image is posterized to some 8 - shift bits, exactly


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
    x = torch.zeros(8, 3, 32, 32)
    x[::2] = 1.0  # even images white, odd images black
    labels = torch.tensor([0, 1] * 4)
    for seed in range(5):
        mixed, targets = mix(x, labels, 2, mixup=0.0, cutmix=1.0, generator=torch.Generator().manual_seed(seed))
        for i in range(8):
            own = (mixed[i, 0] == x[i, 0]).float().mean()  # share of the image's own pixels
            if not math.isclose(float(own), 1.0):  # the partner had other pixels: the box is visible
                assert targets[i, labels[i]].item() == pytest.approx(float(own), abs=1e-6)


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
