"""`attnlab bench vit` runs end to end at a tiny size, both models with the parameter count of the formula."""

import re

import pytest

from attnlab.cli import main


def vit_parameters(*, layers: int, dim: int, mlp: int, patch: int, image: int, classes: int) -> int:
    """A ViT's parameters by hand: patch projection (a conv with bias), class token, one position
    per patch and for the class token; per layer two LayerNorms (scale and shift), q/k/v and the
    output projection (with biases) and the two MLP layers; the final LayerNorm and the head."""
    tokens = (image // patch) ** 2 + 1
    embed = 3 * patch * patch * dim + dim + dim + tokens * dim
    layer = 2 * 2 * dim + 3 * (dim * dim + dim) + (dim * dim + dim) + (dim * mlp + mlp) + (mlp * dim + dim)
    return embed + layers * layer + 2 * dim + dim * classes + classes


def test_bench_vit_prints_a_table_with_the_ratio(capsys):
    pytest.importorskip("transformers", reason="`attnlab bench vit` compares with Hugging Face transformers, "
                        "which is not installed (pip install -e '.[bench]')")
    code = main(["bench", "vit", "--layers", "1", "--dim", "32", "--heads", "2", "--mlp-dim", "64", "--patch", "8",
                 "--image-size", "32", "--classes", "10", "--batch", "2", "--repeats", "1"])
    assert code == 0
    out = capsys.readouterr().out
    counts = re.findall(r"^(?:attnlab ViT|HF ViTForImageClassification)\s+([\d,]+)\s", out, flags=re.M)
    expected = vit_parameters(layers=1, dim=32, mlp=64, patch=8, image=32, classes=10)
    assert expected == 15_690
    assert counts == [f"{expected:,}"] * 2  # identical size, and the size of the formula
    assert "patch 8 (17 tokens)" in out and re.search(r"ratio ours/HF images/s: \d+\.\d{3}", out)
    assert "warning" not in out


@pytest.mark.parametrize("argv,words", [(["--dim", "30", "--heads", "4"], "--dim 30 must be divisible by --heads 4"),
                                        (["--image-size", "30", "--patch", "4"], "--image-size 30 must be divisible")])
def test_bench_vit_rejects_a_bad_shape(capsys, argv, words):
    assert main(["bench", "vit", *argv]) == 2  # checked before transformers is needed
    assert words in capsys.readouterr().err
