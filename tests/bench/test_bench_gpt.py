"""`attnlab bench gpt` runs end to end at a tiny size, with parameter counts equal to GPT-2's."""

import re

import pytest
import torch

from attnlab.cli import main


@pytest.fixture(autouse=True)
def restore_threads():
    """--threads changes torch's global thread count; put it back for the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_bench_gpt_prints_a_table_with_the_ratio(capsys):
    pytest.importorskip("transformers", reason="`attnlab bench gpt` compares with Hugging Face transformers, "
                        "which is not installed (pip install -e '.[bench]')")
    code = main(["bench", "gpt", "--layers", "1", "--dim", "32", "--heads", "2", "--context", "16",
                 "--vocab", "100", "--batch", "2", "--repeats", "1", "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    counts = re.findall(r"^(?:attnlab DialogueGPT|HF GPT2LMHeadModel)\s+([\d,]+)", out, flags=re.M)
    assert len(counts) == 2 and counts[0] == counts[1]  # identical size
    assert re.search(r"ratio ours/HF tokens/s: \d+\.\d+", out)
    assert "warning" not in out


def test_bench_gpt_rejects_a_bad_shape(capsys):
    assert main(["bench", "gpt", "--dim", "30", "--heads", "4"]) == 2
    assert "divisible" in capsys.readouterr().err
