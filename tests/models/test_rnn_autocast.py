"""RNNs under CPU bf16 autocast: float32 inside (oneDNN has no bf16 LSTM without native bf16)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from attnlab.models.lstm_lm import LSTMConfig, LSTMLanguageModel
from attnlab.models.rnn_autocast import run_rnn
from attnlab.models.text import TextClassificationRNN


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_run_rnn_under_autocast_equals_the_float32_run(cell):
    torch.manual_seed(0)
    rnn, x = cell(8, 16, num_layers=2, batch_first=True), torch.randn(3, 5, 8)
    want = rnn(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = run_rnn(rnn, x.bfloat16())[0]
        packed = run_rnn(rnn, pack_padded_sequence(x, torch.tensor([5, 5, 5]), batch_first=True))[0]
    assert got.dtype is torch.float32
    torch.testing.assert_close(got, rnn(x.bfloat16().float())[0])
    torch.testing.assert_close(packed.data.view(5, 3, 16).transpose(0, 1), want)


def test_rnn_models_train_a_step_under_cpu_bf16_autocast():
    torch.manual_seed(0)
    lm = LSTMLanguageModel(LSTMConfig(vocab_size=50, context=8, dim=16, hidden=32))
    clf = TextClassificationRNN(vocab_size=50, dim=16, hidden_size=16)
    ids = torch.randint(3, 50, (2, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lm(ids)
        scores = clf(ids, torch.tensor([6, 4]))
    assert logits.shape == (2, 6, 50) and scores.shape == (2, 2)
    (logits.float().mean() + scores.float().mean()).backward()
    assert torch.isfinite(lm.lstm.weight_hh_l0.grad).all()
    assert torch.isfinite(clf.fwd[0].weight_hh_l0.grad).all()
