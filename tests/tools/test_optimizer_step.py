"""tools/optimizer_step.py: AdamW's step alone (four optimizers) and in the whole step (torch's step
against the C++ one), with the weights checked bit for bit."""

import re

import pytest


@pytest.mark.needs_compiler
def test_it_times_four_optimizers_and_two_steps_and_checks_their_weights(tool):
    done = tool("optimizer_step.py", "--shape", "char", "--rounds", "3", "--steps", "2", "--threads", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1. AdamW's step alone, char GPT (27 tensors, 804,096 parameters), 1 threads" in out
    assert len(re.findall(r"^  (torch loop|FlatAdamW|FlatAdamW C\+\+|torch fused) +[\d.]+ ms", out, re.M)) == 4
    assert "FlatAdamW weights after 3 steps: bit-identical to the loop's" in out
    assert "FlatAdamW C++ weights after 3 steps: bit-identical to the loop's" in out
    assert "torch fused weights after 3 steps: " in out  # (they differ here: not the same arithmetic)
    assert "2. the whole training step of the char GPT (batch 12 x 64)" in out
    assert len(re.findall(r"^  (torch's|C\+\+) +[\d.]+ ms", out, re.M)) == 2
    assert "weights after 5 steps: bit-identical" in out
