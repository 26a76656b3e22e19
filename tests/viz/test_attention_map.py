"""Class-token attention maps and rollout, the PNG grid, and `attnlab attention-map` end to end."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

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
        assert im.format == "PNG" and im.size == figure_pixels(7, 4) == (1680, 500)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory, make_cifar):
    """A ViT trained for two steps on a fake CIFAR-10 (10 images a batch): (run, data dir)."""
    from attnlab.cli import main

    tmp_path = tmp_path_factory.mktemp("vit")
    folder = make_cifar(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "vit", "--preset", "tiny", "--data-dir", str(folder.parent), "--out", str(run),
                 "--set", "train.max_steps=2", "--no-progress"]) == 0
    return run, folder.parent


def attention_map(vit_run, *args):
    from attnlab.cli import main

    run, data = vit_run
    return main(["attention-map", "--checkpoint", str(run), "--data-dir", str(data), *args])


def test_attention_map_cli(vit_run, tmp_path):
    for rollout in ([], ["--rollout"]):
        out = tmp_path / f"maps{len(rollout)}.png"
        assert attention_map(vit_run, "--num-images", "6", "--out", str(out), *rollout) == 0
        with Image.open(out) as im:
            assert im.size == figure_pixels(6, 5)


@pytest.mark.parametrize("args,message", [
    (["--cols", "0"], "--cols must be >= 1 (panels per row), got 0"),
    (["--cols", "-1"], "--cols must be >= 1 (panels per row), got -1"),
    (["--offset", "-5"], "--offset must be >= 0 (validation images to skip), got -5"),
    (["--num-images", "0"], "--num-images must be >= 1, got 0"),
    (["--num-images", "99"], "--offset 0 + --num-images 99 asks for selected validation images up to 99, but 8 "
                             "are selected; lower --num-images/--offset"),
    (["--num-images", "4", "--offset", "5"], "--offset 5 + --num-images 4 asks for selected validation images up "
                                             "to 9, but 8 are selected; lower --num-images/--offset"),
    (["--num-images", "2000"], "2000 panels, 5 per row, make a 2080x100000-pixel PNG, more than 65536 a side; "
                               "lower --num-images (and draw the next ones with --offset) or change --cols"),
], ids=["cols-0", "cols-negative", "offset-negative", "num-images-0", "past-the-end", "offset-past-the-end",
        "too-many-panels"])
def test_attention_map_rejects_bad_numbers(vit_run, tmp_path, capsys, args, message):
    assert attention_map(vit_run, "--out", str(tmp_path / "m.png"), *args) == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")
    assert not (tmp_path / "m.png").exists()


def test_attention_map_out_folder_gets_the_default_name(vit_run, tmp_path, capsys):
    (tmp_path / "existing").mkdir()
    for out in (tmp_path / "existing", f"{tmp_path}/new/"):  # an existing folder, or a path ending in '/'
        assert attention_map(vit_run, "--num-images", "2", "--out", str(out)) == 0
        png = tmp_path / ("existing" if out == tmp_path / "existing" else "new") / "attention_maps.png"
        with Image.open(png) as im:
            assert im.size == figure_pixels(2, 5)
        assert capsys.readouterr().err.startswith(f"wrote {png} (2 validation images, ")


def test_attention_map_unwritable_out(vit_run, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert attention_map(vit_run, "--num-images", "2", "--out", str(tmp_path / "file" / "m.png")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path}/file/m.png: {tmp_path}/file is a file, not a folder; ")
    assert err.count("\n") == 1


def test_attention_map_chooses_images_by_index_class_or_mistake(vit_run, tmp_path, capsys):
    """--images picks positions, --class one true class, --misclassified the model's mistakes; the
    printed count of correct images says which were drawn."""
    out = tmp_path / "m.png"
    assert attention_map(vit_run, "--out", str(out), "--images", "0", "2") == 0
    assert "wrote" in capsys.readouterr().err and Image.open(out).size == figure_pixels(2, 5)
    assert attention_map(vit_run, "--out", str(out), "--misclassified", "--num-images", "1") == 0
    assert "0 classified correctly" in capsys.readouterr().err  # every image drawn is a mistake
    assert attention_map(vit_run, "--out", str(out), "--class", "no-such-class") == 2
    assert "is not a class of this model" in capsys.readouterr().err
    assert attention_map(vit_run, "--out", str(out), "--images", "99") == 2
    assert "--images 99 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["cifar10-cpu", "cifar10-gpu"])
def test_attention_map_draws_both_shipped_vit_presets(preset, make_cifar, tmp_path):
    """The presets' own architectures (conv stem, patch 1, drop-path, head MLP), trained one step."""
    from attnlab.cli import main

    folder = make_cifar(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "vit", "--preset", preset, "--data-dir", str(folder.parent), "--out", str(run),
                 "--set", "train.max_steps=1", "--set", "train.batch_size=8", "--set", "data.val_size=8",
                 "--set", "train.warmup_steps=1", "--no-progress"]) == 0
    for rollout in ([], ["--rollout"]):
        out = tmp_path / f"maps{len(rollout)}.png"
        assert main(["attention-map", "--checkpoint", str(run), "--data-dir", str(folder.parent),
                     "--num-images", "4", "--out", str(out), *rollout]) == 0
        with Image.open(out) as im:
            assert im.size == figure_pixels(4, 5)
