import math

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    interpolate_pos_2d,
)


def test_learned_adds_positions_and_errors_past_max():
    pe = LearnedPositionalEmbedding(max_len=8, dim=4)
    x = torch.zeros(2, 5, 4)
    torch.testing.assert_close(pe(x)[0], pe.weight[:5])
    torch.testing.assert_close(pe(x[:, :1], offset=7)[0, 0], pe.weight[7])
    with pytest.raises(AttnlabError, match="maximum length 8"):
        pe(torch.zeros(1, 9, 4))
    with pytest.raises(AttnlabError, match="sequence of 9 positions exceeds the maximum length 8"):
        pe(torch.zeros(1, 2, 4), offset=7)


def test_interpolate_2d_identity_and_smooth_field():
    pos = torch.randn(16, 3)
    assert interpolate_pos_2d(pos, (4, 4), (4, 4)) is pos
    # a field that is constant along each row stays constant along rows after resizing
    rows = torch.arange(4.0)[:, None, None].expand(4, 4, 2).reshape(16, 2)
    out = interpolate_pos_2d(rows, (4, 4), (6, 6)).reshape(6, 6, 2)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    assert out.shape == (6, 6, 2)
    with pytest.raises(ValueError, match=r"pos has 16 rows, expected 3\*3=9 for the old grid"):
        interpolate_pos_2d(pos, (3, 3), (4, 4))


def test_sinusoidal_matches_formula_any_length():
    enc = SinusoidalPositionalEncoding(dim=6)
    out = enc(torch.zeros(1, 3000, 6))  # no maximum length
    p, i = 2500, 1
    assert out[0, p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 6)), abs=1e-4)
    assert out[0, p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 6)), abs=1e-4)
    torch.testing.assert_close(enc(torch.zeros(1, 2, 6), offset=2500)[0, 0], out[0, 2500])


def test_rotary_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(head_dim=8)
    q, k = torch.randn(1, 1, 8), torch.randn(1, 1, 8)

    def score(m, n):
        qm, _ = rope(q, q, offset=m)
        _, kn = rope(k, k, offset=n)
        return (qm * kn).sum().item()

    assert score(3, 1) == pytest.approx(score(1003, 1001), rel=1e-4, abs=1e-4)
    assert score(0, 0) == pytest.approx((q * k).sum().item(), rel=1e-5)  # position 0: no rotation
    # rotation preserves norms
    qr, _ = rope(q, k, offset=12345)
    torch.testing.assert_close(qr.norm(), q.norm())
