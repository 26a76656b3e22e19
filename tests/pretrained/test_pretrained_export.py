"""``attnlab export RUN --format hf --out DIR``: transformers loads the directory with its own
classes and gives attnlab's logits; a model without a counterpart is one clear error."""

from __future__ import annotations

import torch

from attnlab.cli import main
from attnlab.data.augment import normalize
from attnlab.models.configs import ViTConfig
from attnlab.models.vit import VisionTransformer
from attnlab.pretrained import vit
from attnlab.tasks import load_trained


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_a_trained_gpt_run_round_trips(tmp_path, hf, capsys):
    run, text = tmp_path / "gpt", tmp_path / "text.txt"
    text.write_text(hf.text.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    shape = ["--data", str(text),
             "--set", "model.bias=false", "--set", "model.tie_weights=false", "--set", "model.activation=gelu_tanh",
             "--set", "model.norm_eps=1e-6", "--set", "train.max_steps=3", "--set", "sample.num_tokens=2"]
    assert main(["train", "gpt", "--preset", "tiny", *shape, "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    _, model, _ = load_trained(run)
    ref = hf.transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    x = torch.randint(3, model.config.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        d = diff(model(x), ref(x).logits)
    assert not ref.config.tie_word_embeddings and ref.config.n_positions == model.config.context
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_a_vit_round_trips(tmp_path, hf):
    cfg = ViTConfig(image_size=24, patch_size=6, num_classes=3, dim=36, num_layers=2, num_heads=3, head_dim=12,
                    mlp_dim=50, activation="gelu_tanh", norm_eps=1e-6)
    torch.manual_seed(0)
    model = hf.randomize(VisionTransformer(cfg), seed=0).eval()
    (tmp_path / "hf").mkdir()
    vit.export(model, {"classes": ["a", "b", "c"]}, tmp_path / "hf")
    ref = hf.vit(tmp_path / "hf")
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        d = diff(model(x), ref(x).logits)
    assert ref.config.id2label == {0: "a", 1: "b", 2: "c"} and ref.config.layer_norm_eps == 1e-6
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_a_trained_vit_run_round_trips(tmp_path, make_cifar, hf):
    make_cifar(tmp_path / "data", per_batch=10)
    run = tmp_path / "vit"
    assert main(["train", "vit", "--preset", "tiny", "--set", "data.val_size=8", "--data-dir", str(tmp_path / "data"),
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    _, model, _ = load_trained(run)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        d = diff(model(x), hf.vit(tmp_path / "hf")(x).logits)
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_a_pretrained_vit_exports_with_attnlabs_normalisation(tmp_path, vit_dir, hf):
    original = vit_dir(seed=5)
    assert main(["export", str(original), "--out", str(tmp_path / "hf")]) == 0
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exported = hf.vit(tmp_path / "hf")(normalize(images)).logits  # its preprocessor_config: attnlab's mean/std
        theirs = hf.vit(original)((images.float() / 255 - 0.5) / 0.5).logits
    d = diff(exported, theirs)
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_a_model_without_a_counterpart_is_one_error(tmp_path, capsys):
    run = tmp_path / "toy"
    assert main(["train", "toy", "--preset", "tiny", "--set", "train.max_steps=2", "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: attnlab's toy models have no Hugging Face counterpart to export to; export a gpt, vit or "
                   "text (bert) run"]
    assert not (tmp_path / "hf").exists()


def test_a_non_empty_out_is_never_overwritten(tmp_path, gpt2_dir, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "mine.txt").write_text("keep")
    assert main(["export", str(gpt2_dir(seed=0)), "--out", str(tmp_path / "hf")]) == 2
    assert "already exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["mine.txt"]
