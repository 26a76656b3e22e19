"""GPT-2 (and nanoGPT) weights in attnlab's DialogueGPT: logits and greedy generations equal to
``transformers``' on the same directory, the meta every command reads, and eval's perplexity."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attnlab.cli import main
from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
from attnlab.models.gpt import generate
from attnlab.pretrained import gpt2
from attnlab.pretrained.source import resolve
from attnlab.tasks import load_reader, load_trained

VOCAB = 400  # the test BPE's size (conftest.VOCAB)

SHAPES = {
    "small": {},
    "odd sizes, eps 1e-3": {"n_embd": 45, "n_head": 3, "n_layer": 3, "n_inner": 77, "n_positions": 50,
                            "layer_norm_epsilon": 1e-3},
    "untied head, exact gelu": {"n_embd": 24, "n_head": 2, "n_layer": 1, "tie_word_embeddings": False,
                                "activation_function": "gelu"},
    "gelu_pytorch_tanh, one head": {"n_embd": 16, "n_head": 1, "n_layer": 2,
                                    "activation_function": "gelu_pytorch_tanh"},
}


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_equal_transformers(gpt2_dir, hf, shape):
    folder = gpt2_dir(seed=len(shape), **SHAPES[shape])
    task, model, meta = load_trained(folder)
    ref = hf.gpt2(folder)
    x = torch.randint(0, VOCAB, (3, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), ref(x).logits
    d = diff(ours, theirs)
    print(f"GPT-2 {shape}: max |logits diff| = {d:.3g} (logits up to {float(theirs.abs().max()):.3g})")
    assert task == "gpt" and theirs.abs().max() > 1.0
    assert d < 1e-4, f"{shape}: max abs diff {d:.3g}"
    assert meta["config"]["data"]["mode"] == "stream" and meta["pretrained"]["architecture"] == "GPT2LMHeadModel"


def test_gpt2model_without_a_head_uses_the_tied_embedding(tmp_path, gpt2_dir, hf):
    base = hf.transformers.GPT2LMHeadModel.from_pretrained(str(gpt2_dir(seed=3))).transformer
    base.save_pretrained(str(tmp_path))  # GPT2Model: names without "transformer."
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((gpt2_dir(seed=3) / name).read_bytes())
    _, model, meta = load_trained(tmp_path)
    x = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = base.eval()(x).last_hidden_state @ base.wte.weight.T
        d = diff(model(x), theirs)
    assert meta["pretrained"]["architecture"] == "GPT2Model"
    assert d < 1e-4, f"max abs diff {d:.3g}"


def nanogpt_checkpoint(folder, model) -> dict:
    """nanoGPT's ckpt.pt for the same weights: nn.Linear layout (Conv1D transposed), torch.compile's prefix."""
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            t = t.t()
        state["_orig_mod." + name] = t.clone()
    c = model.config
    args = {"n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd, "block_size": c.n_positions,
            "bias": True, "vocab_size": c.vocab_size, "dropout": 0.0}
    return {"model": state, "model_args": args, "iter_num": 5, "best_val_loss": torch.tensor(2.5),
            "config": {"init_from": "gpt2", "learning_rate": 3e-5}, "optimizer": {"state": {}, "param_groups": []}}


def test_nanogpt_ckpt_pt_loads(tmp_path, gpt2_dir, hf):
    folder = gpt2_dir(seed=4, activation_function="gelu")  # nanoGPT's GELU is the exact one
    ref = hf.gpt2(folder)
    torch.save(nanogpt_checkpoint(folder, ref), tmp_path / "ckpt.pt")
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    for spec in (tmp_path / "ckpt.pt", tmp_path):  # the file, or nanoGPT's out dir
        _, model, meta = load_trained(spec)
        x = torch.randint(0, VOCAB, (2, 19), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            d = diff(model(x), ref(x).logits)
        assert meta["pretrained"]["kind"] == "nanogpt" and model.config.activation == "gelu"
        assert d < 1e-4, f"max abs diff {d:.3g}"


@pytest.mark.parametrize("use_cache", [True, False])
def test_fifty_greedy_tokens_equal_transformers_generate(gpt2_dir, hf, use_cache):
    folder = gpt2_dir(seed=5, n_positions=128)
    _, model, meta = load_trained(folder)
    tok = PretrainedTokenizer.from_directory(folder)
    prompt = tok.encode("ROMEO:\nWhat light through yonder window breaks?")
    ours = generate(model, prompt, 50, temperature=0.0, use_cache=use_cache)
    ref = hf.gpt2(folder)
    out = ref.generate(torch.tensor([prompt]), max_new_tokens=50, min_new_tokens=50, do_sample=False,
                       use_cache=use_cache, pad_token_id=0)
    theirs = out[0, len(prompt):].tolist()
    assert len(set(theirs)) > 1
    assert ours == theirs


def test_reader_shows_readable_pieces(gpt2_dir):
    folder = gpt2_dir(seed=0)
    task, model, meta = load_trained(folder)
    encoded = load_reader(task, model, meta).text("ROMEO: hello there\n", 64)
    tok = PretrainedTokenizer.from_directory(folder)
    assert encoded.inputs[0][0].tolist() == tok.encode("ROMEO: hello there\n")
    assert "".join(encoded.tokens) == "ROMEO:␣hello␣there↵"
    assert not any("Ġ" in t or "Ċ" in t for t in encoded.tokens)


def test_eval_perplexity_equals_transformers_loss(tmp_path, gpt2_dir, hf, capsys):
    folder = gpt2_dir(seed=6)
    text = hf.text.read_text(encoding="utf-8")[:20_000]
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    assert main(["eval", "gpt", "--checkpoint", str(folder), "--data", str(tmp_path / "text.txt"),
                 "--out", str(tmp_path / "ev")]) == 0
    got = json.loads((tmp_path / "ev" / "metrics.json").read_text())["val_perplexity"]
    # by hand: the last 10 % of the tokens, cut into windows of the model's 64 positions, every token predicted once
    ids = PretrainedTokenizer.from_directory(folder).encode(text)
    val = torch.tensor(ids[int(len(ids) * 0.9):])
    T = 64
    n = (len(val) - 1) // T
    x, y = val[: n * T].view(n, T), val[1: n * T + 1].view(n, T)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(hf.gpt2(folder)(x).logits.reshape(-1, VOCAB), y.reshape(-1))
    assert got == pytest.approx(math.exp(float(loss)), rel=1e-5)


def test_build_names_a_tensor_of_the_wrong_shape(gpt2_dir):
    source = resolve(gpt2_dir(seed=0))
    from attnlab.pretrained.source import state_dict

    state = state_dict(source)
    state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 100)
    with pytest.raises(Exception, match=r"tensor 'h\.1\.mlp\.c_fc\.weight' has shape \(32, 100\)"):
        gpt2.build(source, state)


def test_pytorch_model_bin_loads_safely(tmp_path, gpt2_dir, hf):
    folder = gpt2_dir(seed=12)
    ref = hf.gpt2(folder)
    for name in ("config.json", "vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")  # a plain tensor file (weights_only accepts it)
    _, model, meta = load_trained(tmp_path)
    x = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        d = diff(model(x), ref(x).logits)
    assert meta["pretrained"]["path"].endswith("pytorch_model.bin")
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_gpt2_generates_ids_0_and_2_which_attnlab_reserves_for_pad_and_start(gpt2_dir):
    _, model, _ = load_trained(gpt2_dir(seed=13))
    with torch.no_grad():  # the final LayerNorm outputs ones, and row 0 of the tied head is the largest along them
        model.norm.weight.zero_()
        model.norm.bias.fill_(1.0)
        model.tok.weight[0] = 5.0
    assert model.never_generated == ()
    for cache in (True, False):
        assert generate(model, [5, 6, 7], 4, temperature=0.0, use_cache=cache) == [0, 0, 0, 0]
    with torch.no_grad():
        model.tok.weight[0] = 0.0
        model.tok.weight[2] = 5.0
    assert generate(model, [5, 6, 7], 3, temperature=0.0) == [2, 2, 2]
