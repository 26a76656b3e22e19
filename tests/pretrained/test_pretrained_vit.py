"""ViT weights (Hugging Face ViTForImageClassification, timm vit_*) in attnlab's VisionTransformer:
logits equal to transformers' on the same directory, at the checkpoint's image size and at others
(interpolated positions), and the pixel normalisation folded into the patch embedding."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from attnlab.data.augment import normalize
from attnlab.pretrained import vit
from attnlab.pretrained.source import resolve
from attnlab.tasks import load_reader, load_trained

SHAPES = {  # (ViTConfig fields, image height, width fed)
    "small": ({}, 32, 32),
    "odd sizes, eps 1e-6, gelu_new": ({"hidden_size": 45, "num_attention_heads": 3, "intermediate_size": 70,
                                       "num_hidden_layers": 3, "image_size": 24, "patch_size": 4,
                                       "layer_norm_eps": 1e-6, "hidden_act": "gelu_new", "num_labels": 7}, 24, 24),
    "48x40 images, interpolated positions": ({}, 48, 40),
    "64x64 images, one head": ({"num_attention_heads": 1, "num_hidden_layers": 1}, 64, 64),
}


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_equal_transformers(vit_dir, hf, shape):
    fields, h, w = SHAPES[shape]
    folder = vit_dir(seed=len(shape), **fields)
    model = vit.build(resolve(folder))  # reads pixels as the source's were normalised
    x = torch.randn(3, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x)
        theirs = hf.vit(folder)(x, interpolate_pos_encoding=(h, w) != (model.config.image_size,) * 2).logits
    d = diff(ours, theirs)
    print(f"ViT {shape}: max |logits diff| = {d:.3g} (logits up to {float(theirs.abs().max()):.3g})")
    assert theirs.abs().max() > 0.5
    assert d < 1e-4, f"{shape}: max abs diff {d:.3g}"


def test_loaded_for_commands_reads_attnlabs_normalisation(vit_dir, hf):
    folder = vit_dir(seed=1, num_labels=4, id2label={0: "cat", 1: "dog", 2: "car", 3: "ship"})
    task, model, meta = load_trained(folder)
    reader = load_reader(task, model, meta)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(*reader.images(images))
        theirs = hf.vit(folder)((images.float() / 255 - 0.5) / 0.5).logits  # ViTImageProcessor's defaults
        small = model(normalize(images[:, :, :16, :16]))  # other sizes: resized to the model's 32 px first
    d = diff(ours, theirs)
    assert task == "vit" and meta["classes"] == ["cat", "dog", "car", "ship"] and reader.image_size == 32
    assert d < 1e-4, f"max abs diff {d:.3g}"
    resized = torch.nn.functional.interpolate(normalize(images[:, :, :16, :16]), size=(32, 32), mode="bilinear")
    with torch.no_grad():
        assert diff(small, model.forward_head(model.forward_features(resized))) < 1e-5


def timm_files(folder, hf_folder, *, architecture: str, model_args: dict | None) -> None:
    """A timm checkpoint of the same weights, by hand: timm's names and fused qkv, its config.json."""
    hf_state = load_file(str(hf_folder / "model.safetensors"))
    cfg = json.loads((hf_folder / "config.json").read_text())
    e, state = "vit.embeddings.", {}
    state["cls_token"] = hf_state[e + "cls_token"]
    state["pos_embed"] = hf_state[e + "position_embeddings"]
    state["patch_embed.proj.weight"] = hf_state[e + "patch_embeddings.projection.weight"]
    state["patch_embed.proj.bias"] = hf_state[e + "patch_embeddings.projection.bias"]
    for i in range(cfg["num_hidden_layers"]):
        h, b = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            state[b + f"attn.qkv.{kind}"] = torch.cat([hf_state[h + f"attention.attention.{n}.{kind}"]
                                                       for n in ("query", "key", "value")])
            for theirs, timm in (("layernorm_before", "norm1"), ("layernorm_after", "norm2"),
                                 ("attention.output.dense", "attn.proj"), ("intermediate.dense", "mlp.fc1"),
                                 ("output.dense", "mlp.fc2")):
                state[b + f"{timm}.{kind}"] = hf_state[h + f"{theirs}.{kind}"]
    for kind in ("weight", "bias"):
        state[f"norm.{kind}"] = hf_state[f"vit.layernorm.{kind}"]
        state[f"head.{kind}"] = hf_state[f"classifier.{kind}"]
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = {"architecture": architecture, "num_classes": len(cfg["id2label"]), "num_features": cfg["hidden_size"],
              "global_pool": "token",
              "pretrained_cfg": {"input_size": [3, cfg["image_size"], cfg["image_size"]],
                                 "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    if model_args:
        config["model_args"] = model_args
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("case", ["model_args", "named size"])
def test_timm_checkpoint_equals_the_same_weights_from_hugging_face(tmp_path, vit_dir, hf, case):
    if case == "named size":  # vit_tiny: width 192, 3 heads (timm's table; no model_args)
        hf_folder = vit_dir(seed=2, hidden_size=192, num_attention_heads=3, num_hidden_layers=1,
                            intermediate_size=96, layer_norm_eps=1e-6)
        timm_files(tmp_path / "timm", hf_folder, architecture="vit_tiny_patch8_32", model_args=None)
    else:
        hf_folder = vit_dir(seed=3, layer_norm_eps=1e-6)  # timm's eps
        timm_files(tmp_path / "timm", hf_folder, architecture="vit_small_patch8_32", model_args={"num_heads": 2})
    source = resolve(tmp_path / "timm")
    model = vit.build(source)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        d = diff(model(x), hf.vit(hf_folder)(x).logits)
    assert source.model_type == "vit" and model.config.norm_eps == 1e-6
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_a_timm_variant_attnlab_lacks_is_refused(tmp_path, vit_dir):
    timm_files(tmp_path / "timm", vit_dir(seed=0), architecture="vit_small_patch8_32", model_args={"num_heads": 2})
    config = json.loads((tmp_path / "timm" / "config.json").read_text())
    (tmp_path / "timm" / "config.json").write_text(json.dumps({**config, "global_pool": "avg"}))
    with pytest.raises(Exception, match="a ViT variant .* that attnlab's ViT does not have"):
        vit.build(resolve(tmp_path / "timm"))


def test_attend_on_a_resized_image_gives_the_models_grid(vit_dir):
    _, model, _ = load_trained(vit_dir(seed=0))
    attended = model.attend(torch.zeros(1, 3, 20, 20))
    assert attended.grid == (4, 4) and attended.attentions[0].shape == (1, 2, 17, 17)


def test_eval_on_cifar_equals_transformers_on_resized_images(tmp_path, vit_dir, make_cifar, hf):
    from attnlab.cli import main
    from attnlab.data import cifar10

    folder = vit_dir(seed=9, image_size=64, patch_size=16, num_labels=10)  # a 64 px model, 32 px images
    make_cifar(tmp_path / "data", per_batch=10)
    assert main(["eval", "vit", "--checkpoint", str(folder), "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path / "ev")]) == 0
    got = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    _, test = cifar10.load_cifar10(tmp_path / "data")
    pixels = torch.nn.functional.interpolate((test.images.float() / 255 - 0.5) / 0.5, size=(64, 64),
                                             mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits = hf.vit(folder)(pixels).logits
    loss = torch.nn.functional.cross_entropy(logits, test.labels)
    accuracy = (logits.argmax(-1) == test.labels).float().mean()
    assert got["test_loss"] == pytest.approx(float(loss), rel=1e-4)
    assert got["test_accuracy"] == pytest.approx(float(accuracy))


def test_eval_on_data_with_other_classes_says_to_fine_tune(tmp_path, vit_dir, make_cifar, capsys):
    from attnlab.cli import main

    make_cifar(tmp_path / "data", per_batch=10)
    assert main(["eval", "vit", "--checkpoint", str(vit_dir(seed=0)), "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path / "ev")]) == 2
    assert "classifies 5 classes, the data has 10; fine-tune it on this data first" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
