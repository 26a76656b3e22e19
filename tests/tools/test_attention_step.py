"""tools/attention_step.py: one layer's causal attention and the whole step, PyTorch's kernel and attnlab's."""

import re

import pytest


@pytest.mark.needs_compiler
def test_it_times_both_kernels_and_both_steps_and_their_results_agree(tool):
    done = tool("attention_step.py", "--shape", "char", "--calls", "4", "--steps", "2", "--threads", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1. one layer's causal attention, forward and backward: batch 12, 64 positions, 4 heads of 32" in out
    assert "2. the whole training step of the char GPT (4 layers, batch 12 x 64)" in out
    assert len(re.findall(r"^  (PyTorch|attnlab) +[\d.]+ ms", out, re.M)) == 4
    diffs = re.search(r"largest difference: output (\S+), gradient (\S+)", out)
    assert diffs and 0 < float(diffs[1]) < 1e-5 and 0 < float(diffs[2]) < 1e-4  # not the same code, the same math
    first = re.search(r"losses: first (\S+) / (\S+), last (\S+) / (\S+)", out)
    assert first and abs(float(first[1]) - float(first[2])) < 1e-5 and abs(float(first[3]) - float(first[4])) < 1e-3
