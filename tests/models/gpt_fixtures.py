"""What the DialogueGPT tests share (test_gpt.py, test_gpt_step.py): a small model, one thread."""

import pytest
import torch

from attnlab.models.gpt import DialogueGPT, GPTConfig


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second thread only adds synchronisation (badly so on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_gpt(seed=0, **kw):
    """A 2-layer, 32-wide DialogueGPT (vocabulary 50, context 16) with weights drawn from ``seed``, in eval mode."""
    torch.manual_seed(seed)
    cfg = dict(vocab_size=50, context=16, dim=32, num_heads=4, num_layers=2, mlp_dim=64, dropout=0.0)
    return DialogueGPT(GPTConfig(**{**cfg, **kw})).eval()
