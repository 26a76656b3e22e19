"""Class-token attention maps and rollout, the PNG grid, and `attnlab attention-map` end to end."""

from __future__ import annotations

import torch
from PIL import Image

from attnlab.data import cifar10
from attnlab.viz.attention_map import attention_rollout, cls_attention, figure_pixels, save_grid, upsample


def random_attention(B, H, T, layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(B, H, T, T, generator=g), dim=-1) for _ in range(layers)]


def test_cls_attention_is_the_mean_of_row_zero():
    atts = random_attention(2, 3, 5, 4)
    expected = torch.stack([a[:, :, 0, 1:] for a in atts]).mean(dim=(0, 2))
    torch.testing.assert_close(cls_attention(atts), expected)
    assert cls_attention(atts).shape == (2, 4)


def test_rollout_hand_computed():
    atts = random_attention(1, 2, 4, 2, seed=1)
    eye = torch.eye(4)
    a1 = 0.5 * atts[0][0].mean(0) + 0.5 * eye
    a2 = 0.5 * atts[1][0].mean(0) + 0.5 * eye
    expected = (a2 / a2.sum(-1, keepdim=True)) @ (a1 / a1.sum(-1, keepdim=True))
    torch.testing.assert_close(attention_rollout(atts)[0], expected[0, 1:])
    uniform = [torch.full((1, 1, 4, 4), 0.25)] * 3  # (0.5 U + 0.5 I)^3 = 0.125 I + 0.875 U
    torch.testing.assert_close(attention_rollout(uniform), torch.full((1, 3), 0.875 / 4))


def test_upsample_and_png_size(tmp_path):
    scores = torch.rand(7, 16)
    maps = upsample(scores, (4, 4), (32, 32))
    assert maps.shape == (7, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(7))
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    out = save_grid(images, maps, [f"img {i}" for i in range(7)], tmp_path / "grid.png", cols=4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == figure_pixels(7, 4) == (800, 500)


def test_attention_map_cli(tmp_path):
    from attnlab.cli import main

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        cifar10.write_batch(folder / name, torch.randint(0, 256, (10, 3, 32, 32), generator=g, dtype=torch.uint8),
                            list(range(10)))
    run = tmp_path / "run"
    assert main(["train", "vit", "--preset", "tiny", "--data-dir", str(folder.parent), "--out", str(run),
                 "--set", "train.max_steps=2", "--no-progress"]) == 0
    for rollout in ([], ["--rollout"]):
        out = tmp_path / f"maps{len(rollout)}.png"
        assert main(["attention-map", "--checkpoint", str(run), "--num-images", "6", "--out", str(out),
                     "--data-dir", str(folder.parent), *rollout]) == 0
        with Image.open(out) as im:
            assert im.size == figure_pixels(6, 5)
    assert main(["attention-map", "--checkpoint", str(run), "--num-images", "99", "--out", str(out),
                 "--data-dir", str(folder.parent)]) == 2
