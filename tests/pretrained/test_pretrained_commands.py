"""The commands on pretrained directories (``--checkpoint DIR``): generate with the KV cache, the
explorer's head view and step-through on GPT-2, its patch maps on a ViT, and GPT-2's config for every size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from attnlab.cli import main
from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
from attnlab.pretrained.gpt2 import gpt_config
from attnlab.pretrained.source import Source
from attnlab.tasks import load_trained


def page_data(path: Path) -> dict:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', path.read_text(), re.S)
    assert match, "no data in the page"
    return json.loads(match.group(1))


@pytest.mark.parametrize("cache", [True, False])
def test_generate_prints_transformers_greedy_continuation(gpt2_dir, hf, capsys, cache):
    folder = gpt2_dir(seed=10, n_positions=128)
    tok = PretrainedTokenizer.from_directory(folder)
    prompt = tok.encode("KING RICHARD:\nNow is the winter")
    out = hf.gpt2(folder).generate(torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                                   pad_token_id=0)
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(folder), "--prompt", "KING RICHARD:\nNow is the winter", "--greedy",
            "--num-tokens", "20"] + ([] if cache else ["--no-cache"])
    assert main(argv) == 0
    assert capsys.readouterr().out == tok.decode(out[0].tolist()) + "\n"


def test_explore_gpt2_head_view_and_step_through(tmp_path, gpt2_dir):
    folder = gpt2_dir(seed=11, n_positions=128)
    assert main(["explore", "--checkpoint", str(folder), "ROMEO: what light", "--out", str(tmp_path / "a.html")]) == 0
    data = page_data(tmp_path / "a.html")
    assert "".join(data["tokens"]) == "ROMEO:␣what␣light" and data["title"] == "GPT-2 language model"
    assert data["attention"]["shape"] == [2, 4, len(data["tokens"]), len(data["tokens"])]
    assert main(["explore", "--checkpoint", str(folder), "--prompt", "ROMEO:", "--generate", "6", "--greedy",
                 "--out", str(tmp_path / "b.html")]) == 0
    _, model, _ = load_trained(folder)
    tok = PretrainedTokenizer.from_directory(folder)
    from attnlab.models.gpt import generate

    new = generate(model, tok.encode("ROMEO:"), 6)
    steps = page_data(tmp_path / "b.html")["generation"]["steps"]
    assert [s["token"] for s in steps] == [tok.vocab[i] for i in new]


def test_explore_vit_patch_maps(tmp_path, vit_dir):
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "red.png")
    assert main(["explore", "--checkpoint", str(vit_dir(seed=12, image_size=48)), "--image-file",
                 str(tmp_path / "red.png"), "--out", str(tmp_path / "v.html")]) == 0
    data = page_data(tmp_path / "v.html")
    assert data["kind"] == "image" and data["grid"] == [6, 6] and data["images"][0]["pred"].startswith("LABEL_")


@pytest.mark.parametrize("name,fields,shape", [
    ("gpt2-medium", {"n_embd": 1024, "n_layer": 24, "n_head": 16}, (1024, 24, 16, 4096)),
    ("gpt2-large", {"n_embd": 1280, "n_layer": 36, "n_head": 20}, (1280, 36, 20, 5120)),
    ("gpt2-xl", {"n_embd": 1600, "n_layer": 48, "n_head": 25}, (1600, 48, 25, 6400)),
    ("distilgpt2", {"n_embd": 768, "n_layer": 6, "n_head": 12}, (768, 6, 12, 3072)),
])
def test_every_gpt2_size_maps_to_a_gpt_config(hf, name, fields, shape):
    config = hf.transformers.GPT2Config(**fields).to_dict()
    c = gpt_config(Source(spec=f"hf:{name}", kind="hf", directory=Path("."), weights=Path("x"), config=config))
    assert (c.dim, c.num_layers, c.num_heads, c.mlp_dim) == shape
    assert (c.vocab_size, c.context, c.activation, c.norm_eps, c.tie_weights) == (50257, 1024, "gelu_tanh", 1e-5, True)
