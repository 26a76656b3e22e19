"""`attnlab bench bert` runs end to end at a tiny size: both models read the same weights (their
logits agree, the difference printed) and the table counts the real tokens."""

import re

import pytest

from attnlab.cli import main


@pytest.mark.parametrize("padded", [False, True])
def test_bench_bert_prints_the_table_and_the_logit_difference(capsys, padded):
    pytest.importorskip("transformers", reason="`attnlab bench bert` compares with Hugging Face transformers")
    argv = ["bench", "bert", "--layers", "1", "--dim", "32", "--heads", "4", "--mlp-dim", "48", "--vocab", "1200",
            "--batch", "3", "--seq-len", "20", "--repeats", "1"]
    assert main(argv + (["--padded"] if padded else [])) == 0
    out = capsys.readouterr().out
    real = int(re.search(r"batch 3 x 20 tokens \((?:padded, )?(\d+) real\)", out).group(1))
    assert (10 * 3 <= real < 60) if padded else real == 60
    assert re.search(r"^attnlab BertClassifier\s+[\d.]+\s+[\d,]+$", out, flags=re.M)
    assert re.search(r"^HF BertForSequenceClassification\s+[\d.]+\s+[\d,]+$", out, flags=re.M)
    assert re.search(r"attnlab / transformers tokens/s: \d+\.\d\dx", out)
    diff = float(re.search(r"largest logit difference: (\S+)", out).group(1))
    assert diff < 1e-5


def test_bench_bert_rejects_a_bad_shape(capsys):
    assert main(["bench", "bert", "--dim", "30", "--heads", "4"]) == 2
    assert "--dim 30 must be divisible by --heads 4" in capsys.readouterr().err
