"""Fine-tuning from pretrained weights (``attnlab train gpt|vit --init``): the run starts from them,
records where they came from with a checksum, resumes bit-exactly, and its model generates."""

from __future__ import annotations

import hashlib
import json
import shutil

import torch
from safetensors.torch import load_file

from attnlab.cli import main
from attnlab.data.augment import normalize
from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
from attnlab.models.gpt import generate
from attnlab.tasks import load_trained

LR = 3e-5  # the finetune preset's constant learning rate


def losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def test_gpt_finetune_starts_from_the_weights_resumes_exactly_and_generates(tmp_path, gpt2_dir, hf, capsys):
    folder = gpt2_dir(seed=7)
    text = tmp_path / "text.txt"
    text.write_text(hf.text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["train", "gpt", "--init", str(folder), "--preset", "finetune", "--data", str(text), "--set",
            "train.max_steps=6", "--set", "train.eval_every=3", "--set", "train.keep_last=5", "--set",
            "train.log_every=1", "--set", "data.window=32", "--set", "sample.num_tokens=3", "--no-progress"]
    assert main([*args, "--out", str(a)]) == 0
    shutil.copytree(a, b)
    assert main(["train", "gpt", "--resume-from", str(b / "checkpoints" / "step-00000003"), "--data", str(text),
                 "--no-progress"]) == 0
    final_a = load_file(str(a / "checkpoints" / "step-00000006" / "model.safetensors"))
    final_b = load_file(str(b / "checkpoints" / "step-00000006" / "model.safetensors"))
    assert final_a.keys() == final_b.keys() and all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert losses(b) == losses(a) and len(losses(a)) == 6

    meta = json.loads((a / "checkpoints" / "step-00000006" / "meta.json").read_text())
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert meta["pretrained"]["checksum"] == f"sha256:{digest}" and meta["pretrained"]["source"] == str(folder)
    assert meta["config"]["data"]["tokenizer"] == "pretrained" and meta["config"]["model"]["activation"] == "gelu_tanh"

    # six Adam steps of 3e-5 move no weight by more than 6 * 3e-5: the run started from the pretrained ones
    _, start, _ = load_trained(folder)
    _, tuned, tuned_meta = load_trained(a)
    moved = max(float((p - q).abs().max()) for p, q in zip(start.state_dict().values(), tuned.state_dict().values()))
    assert 0 < moved <= 6 * LR * 1.01, moved

    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(a), "--prompt", "ROMEO:", "--greedy", "--num-tokens", "8"]) == 0
    tok = PretrainedTokenizer.from_directory(folder)
    ids = generate(tuned, tok.encode("ROMEO:"), 8, temperature=0.0)
    assert capsys.readouterr().out == tok.decode(tok.encode("ROMEO:") + ids) + "\n"

    # the tuned run exports with its tokenizer: transformers reads both back
    assert main(["export", str(a), "--out", str(tmp_path / "hf")]) == 0
    ref = hf.transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    ref_tok = hf.transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    sample = hf.text.read_text(encoding="utf-8")[:3_000]
    assert ref_tok(sample)["input_ids"] == tok.encode(sample)
    x = torch.tensor([tok.encode(sample)[:60]])
    with torch.no_grad():
        d = float((tuned(x) - ref(x).logits).abs().max())
    assert d < 1e-4, f"max abs diff {d:.3g}"


def test_vit_finetune_takes_a_new_head_and_resizes_the_images(tmp_path, vit_dir, make_cifar, capsys):
    folder = vit_dir(seed=8, image_size=48, num_labels=5)  # 48 px, 5 classes; CIFAR: 32 px, 10 classes
    make_cifar(tmp_path / "data", per_batch=10)
    run = tmp_path / "vit"
    assert main(["train", "vit", "--init", str(folder), "--preset", "tiny", "--set", "data.val_size=8", "--set",
                 "train.max_steps=2", "--set", "train.lr=1e-4", "--data-dir", str(tmp_path / "data"),
                 "--out", str(run), "--no-progress"]) == 0
    assert "a new head for the data's 10 classes" in capsys.readouterr().err
    _, start, _ = load_trained(folder)
    _, tuned, meta = load_trained(run)
    assert tuned.config.image_size == 48 and tuned.config.resize_inputs and tuned.config.num_classes == 10
    assert meta["pretrained"]["checksum"].startswith("sha256:")
    body = [k for k in start.state_dict() if not k.startswith("head.")]
    moved = max(float((start.state_dict()[k] - tuned.state_dict()[k]).abs().max()) for k in body)
    assert 0 < moved <= 2 * 1e-4 * 1.05, moved


def test_vit_without_a_head_fine_tunes_and_is_refused_for_inference(tmp_path, hf, make_cifar, capsys):
    cfg = hf.transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=32, patch_size=8)
    torch.manual_seed(0)
    backbone = hf.randomize(hf.transformers.ViTModel(cfg), seed=0).eval()  # ViT-21k style: no classifier
    backbone.save_pretrained(str(tmp_path / "vitmodel"))
    assert main(["generate", "--checkpoint", str(tmp_path / "vitmodel")]) == 2
    assert main(["explore", "--checkpoint", str(tmp_path / "vitmodel"), "--image-file", str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "p.html")]) == 2
    assert "has no classification head (ViTModel); fine-tune it first" in capsys.readouterr().err
    make_cifar(tmp_path / "data", per_batch=10)
    assert main(["train", "vit", "--init", str(tmp_path / "vitmodel"), "--preset", "tiny", "--set", "data.val_size=8",
                 "--set", "train.max_steps=1", "--set", "train.lr=1e-7", "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    _, tuned, _ = load_trained(tmp_path / "run")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():  # one step of 1e-7 from the backbone: its class-token features, to ~1e-6
        ours = tuned.forward_features(normalize(images))[:, 0]
        theirs = backbone((images.float() / 255 - 0.5) / 0.5).last_hidden_state[:, 0]
    d = float((ours - theirs).abs().max())
    assert tuned.head.weight.abs().sum() > 0 and d < 1e-4, d
