"""``attnlab bench pretrained`` on a tiny GPT-2: it runs, and attnlab's greedy tokens are transformers'."""

from __future__ import annotations

import pytest

from attnlab.cli import main

pytest.importorskip("transformers")


def test_tiny_gpt2_bench_prints_every_row_and_identical_tokens(capsys):
    assert main(["bench", "pretrained", "--layers", "1", "--dim", "32", "--heads", "2", "--vocab", "300",
                 "--context", "64", "--prompt", "8", "--new-tokens", "12", "--batch", "2", "--seq-len", "16",
                 "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("load from safetensors", "greedy generation, 12 tokens after 8, tokens/s",
                "fine-tuning step, batch 2 x 16, steps/s", "fine-tuning step peak memory, MiB"):
        assert row in out
    assert "generated tokens identical: yes" in out


def test_a_prompt_longer_than_the_context_is_one_error(capsys):
    assert main(["bench", "pretrained", "--context", "16", "--prompt", "10", "--new-tokens", "10"]) == 2
    assert "must fit the --context of 16" in capsys.readouterr().err


def test_greedy_tokens_agree_where_the_model_picks_id_0(capsys):
    # Four words and twenty greedy steps pick id 0 again and again. transformers' generate used to
    # have 0 as its end token and banned it for a fixed length, so the tokens parted ("a bug").
    assert main(["bench", "pretrained", "--layers", "1", "--dim", "32", "--heads", "2", "--vocab", "4",
                 "--context", "64", "--prompt", "2", "--new-tokens", "20", "--batch", "1", "--seq-len", "8",
                 "--repeats", "1"]) == 0
    assert "generated tokens identical: yes" in capsys.readouterr().out
