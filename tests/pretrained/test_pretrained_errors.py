"""Bad pretrained sources: each is one line ``error: ...`` with exit code 2, and nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from attnlab.cli import main


class NotATensor:  # what a pickle may hold and a weights_only load refuses
    pass


def fails(capsys, argv: list[str], match: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert match in lines[0], lines[0]
    assert captured.out == ""


@pytest.fixture
def out(tmp_path):
    yield tmp_path / "exported"
    assert not (tmp_path / "exported").exists()  # nothing written


def test_a_directory_without_config_json(tmp_path, gpt2_dir, out, capsys):
    (tmp_path / "m").mkdir()
    shutil.copy(gpt2_dir(seed=0) / "model.safetensors", tmp_path / "m")
    fails(capsys, ["export", str(tmp_path / "m"), "--out", str(out)], "has no config.json; pass a directory in "
          "Hugging Face layout")


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path, gpt2_dir, out, capsys):
    (tmp_path / "m").mkdir()
    shutil.copy(gpt2_dir(seed=0) / "model.safetensors", tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama",
                                                            "architectures": ["LlamaForCausalLM"]}))
    fails(capsys, ["generate", "--checkpoint", str(tmp_path / "m")], "is a LlamaForCausalLM (model_type 'llama'), "
          "which attnlab cannot load; supported: GPT-2 (GPT2LMHeadModel, GPT2Model, distilgpt2, nanoGPT ckpt.pt), "
          "ViT (ViTForImageClassification")
    fails(capsys, ["export", str(tmp_path / "m"), "--out", str(out)], "LlamaForCausalLM")


def test_a_shape_mismatch_names_the_tensor(tmp_path, gpt2_dir, out, capsys):
    folder = tmp_path / "m"
    shutil.copytree(gpt2_dir(seed=0), folder)
    state = load_file(str(folder / "model.safetensors"))
    state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 100)
    save_file(state, str(folder / "model.safetensors"))
    fails(capsys, ["export", str(folder), "--out", str(out)], "tensor 'h.1.mlp.c_fc.weight' has shape (32, 100), "
          "but config.json implies (32, 128)")


@pytest.mark.parametrize("resolves", [False, True])  # the host name does not resolve; or it does, and downloads fail
def test_a_hub_name_without_network_says_how_to_pass_a_directory(monkeypatch, out, capsys, resolves):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from attnlab.pretrained import source

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the hub (tests never use the network)")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setattr(source, "hub_reachable", lambda: resolves)
    fails(capsys, ["export", "hf:gpt2", "--out", str(out)], "cannot download hf:gpt2 (no network, or the hub is "
          "unreachable); on a machine with a network run `hf download gpt2 --local-dir DIR` and pass --checkpoint DIR")


@pytest.mark.parametrize("content", ["a pickled object", "a list"])
def test_a_bin_that_is_not_a_plain_tensor_file(tmp_path, gpt2_dir, out, capsys, content):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(gpt2_dir(seed=0) / "config.json", folder)
    payload = {"w": torch.zeros(2), "x": NotATensor()} if content == "a pickled object" else [torch.zeros(2)]
    torch.save(payload, folder / "pytorch_model.bin")
    fails(capsys, ["export", str(folder), "--out", str(out)], "pytorch_model.bin is not a plain tensor file")


def test_a_gpt2_where_a_vit_is_expected(tmp_path, gpt2_dir, capsys):
    fails(capsys, ["eval", "vit", "--checkpoint", str(gpt2_dir(seed=0)), "--data-dir", str(tmp_path),
                   "--out", str(tmp_path / "ev")], "is a GPT2LMHeadModel (gpt), not a ViT (vit)")
    assert not (tmp_path / "ev").exists()
