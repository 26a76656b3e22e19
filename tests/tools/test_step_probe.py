"""tools/step_probe.py: the char step with PyTorch's GELU against oneDNN's, and its matmuls timed inside it."""

import re


def test_it_times_both_gelus_and_every_product_of_the_step(tool):
    done = tool("step_probe.py", "--rounds", "2", "--steps", "2", "--threads", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1. GELU, 768 x 512, forward and backward, 1 threads" in out
    assert len(re.findall(r"^  (oneDNN|PyTorch) +[\d.]+ ms$", out, re.M)) == 4
    differ = re.search(r"bits that differ: (\d+) % of outputs, (\d+) % of gradients", out)
    assert differ and int(differ[1]) > 0 and int(differ[2]) > 0  # not the same kernel
    assert len(re.findall(r"^  round \d: oneDNN [\d.]+ ms, PyTorch [\d.]+ ms, speed-up [\d.]+x$", out, re.M)) == 2
    rows = re.findall(r"^  \((\d+), (\d+)\) .* +(\d+) +[\d.]+ +[\d.]+$", out, re.M)
    # the char GPT's 51 products a step: 12 per layer (4 forward, 8 backward) and 3 for the output layer
    assert sum(int(per_step) for *_, per_step in rows) == 51
    assert "load average" in out.splitlines()[-1]
