"""`run_rnn`: run a PyTorch RNN module in float32 when CPU autocast is on.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` PyTorch hands ``nn.LSTM`` to oneDNN in
bf16, and on a CPU without native bf16 (an AVX2-only AMD EPYC, for one) oneDNN has no such
kernel: the forward pass fails with "could not create a primitive descriptor for the LSTM
forward propagation primitive". The recurrent kernels are small matmuls over one time step,
so little speed is lost by keeping them in float32 everywhere; the layers around them still
follow autocast.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["run_rnn"]


def run_rnn(rnn: nn.RNNBase, x: torch.Tensor | PackedSequence) -> Any:
    """``rnn(x)``, but in float32 (autocast off) when ``x`` is on the CPU under autocast."""
    data = x.data if isinstance(x, PackedSequence) else x
    if data.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return rnn(x)
    with torch.autocast("cpu", enabled=False):
        return rnn(x.float())
