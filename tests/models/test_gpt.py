"""DialogueGPT, DialogueLoss and generate: loss by hand, padding, causality, KV cache, overfitting."""

import copy
import math
import os

import pytest
import torch
from gpt_fixtures import one_thread, small_gpt  # noqa: F401  (one_thread: an autouse fixture)

from attnlab.errors import AttnlabError
from attnlab.losses import DialogueLoss, lm_loss
from attnlab.models.gpt import DialogueGPT, GPTConfig, generate, generate_batch
from attnlab.models.lstm_lm import LSTMConfig, LSTMLanguageModel
from attnlab.vocab import PAD_ID, START_ID


def test_loss_by_hand_on_a_tiny_example():
    # one example of T=3 tokens [start, 3, 4] plus one pad: two terms, logit 0 -> 3, logit 1 -> 4
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0],
                            [1.0, 0.0, 0.0, 0.0, 2.0],
                            [9.0, 9.0, 9.0, 9.0, 9.0],  # last real logit: no target
                            [5.0, 0.0, 0.0, 0.0, 0.0]]])  # padding position
    ids = torch.tensor([[START_ID, 3, 4, PAD_ID]])
    mask = torch.tensor([[1, 1, 1, 0]])

    def ce(row, target):
        return -(row[target] - torch.logsumexp(row, 0))

    expected = [ce(logits[0, 0], 3), ce(logits[0, 1], 4)]
    mean, total, count = lm_loss(logits, ids, mask)
    assert count.item() == 2
    assert total.item() == pytest.approx(float(sum(expected)), abs=1e-6)
    assert mean.item() == pytest.approx(float(sum(expected)) / 2, abs=1e-6)
    # by hand: -(3 - logsumexp(0..4)) and -(2 - logsumexp(1,0,0,0,2))
    lse = math.log(sum(math.exp(v) for v in range(5)))
    lse2 = math.log(math.exp(1) + 3 + math.exp(2))
    assert total.item() == pytest.approx((lse - 3) + (lse2 - 2), abs=1e-6)


def test_padding_is_excluded_from_the_loss_and_does_not_change_real_logits():
    model = small_gpt()
    a = torch.tensor([[START_ID, 5, 6, 7, 8, 9]])
    b = torch.tensor([[START_ID, 10, 11]])
    batch = {"input_ids": torch.tensor([[START_ID, 5, 6, 7, 8, 9], [START_ID, 10, 11, PAD_ID, PAD_ID, PAD_ID]]),
             "input_mask": torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=torch.bool)}
    with torch.no_grad():
        loss, stats = DialogueLoss()(model, batch)
        la, sa, ca = lm_loss(model(a), a)
        lb, sb, cb = lm_loss(model(b), b)
        logits = model(batch["input_ids"], batch["input_mask"])
    assert stats["count"].item() == 5 + 2  # target tokens: each example's tokens after the first
    real = int(batch["input_mask"].sum())  # the real (non-pad) input tokens, counted here
    assert real == 6 + 3 and int(stats["tokens"]) == real  # what tokens/s counts: not the 3 pads
    assert stats["loss_sum"].item() == pytest.approx((sa + sb).item(), rel=1e-5)
    assert loss.item() == pytest.approx(((sa + sb) / 7).item(), rel=1e-5)
    torch.testing.assert_close(logits[1, :3], model(b)[0].detach(), atol=1e-5, rtol=1e-5)
    # changing a padded id changes nothing
    other = batch["input_ids"].clone()
    other[1, 3:] = 17
    with torch.no_grad():
        _, stats2 = DialogueLoss()(model, {**batch, "input_ids": other})
    assert stats2["loss_sum"].item() == pytest.approx(stats["loss_sum"].item(), rel=1e-6)


def test_stream_windows_make_every_position_a_target():
    model = small_gpt()
    ids = torch.randint(3, 50, (2, 10), generator=torch.Generator().manual_seed(0))
    labels = torch.randint(3, 50, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss, stats = DialogueLoss()(model, {"input_ids": ids, "labels": labels})
        logits = model(ids)
    total = sum(-torch.log_softmax(logits[b, t], -1)[labels[b, t]] for b in range(2) for t in range(10))
    assert int(stats["count"]) == 20 and int(stats["tokens"]) == ids.numel() == 20  # no mask: no pads
    assert stats["loss_sum"].item() == pytest.approx(float(total), rel=1e-5)
    assert loss.item() == pytest.approx(float(total) / 20, rel=1e-5)


def test_causality_later_tokens_do_not_change_earlier_logits():
    model = small_gpt()
    x = torch.randint(3, 50, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(3, 50, (2, 5))
    with torch.no_grad():
        lx, ly = model(x), model(y)
        mask = torch.ones(2, 12, dtype=torch.bool)
        lmx, lmy = model(x, mask), model(y, mask)
    torch.testing.assert_close(lx[:, :7], ly[:, :7])
    torch.testing.assert_close(lmx[:, :7], lmy[:, :7])
    assert not torch.allclose(lx[:, 7:], ly[:, 7:])


def test_right_padding_shortcut_equals_the_combined_causal_and_padding_mask(monkeypatch):
    import attnlab.models.gpt as gpt

    model = small_gpt()
    ids = torch.randint(3, 50, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2, 2:] = False
    with torch.no_grad():
        fast = model(ids, mask)  # right padding: the fused causal kernel
        monkeypatch.setattr(gpt, "_right_padded", lambda m: False)
        explicit = model(ids, mask)  # causal mask AND padding mask
    torch.testing.assert_close(fast[mask], explicit[mask], atol=1e-5, rtol=1e-5)
    assert not model.transformer.layers[0].attn.dropout


@pytest.mark.parametrize("pads", [1, 4, 9])
def test_left_padding_is_invisible_to_the_real_tokens(pads):
    # Left padding never takes the right-padding shortcut: it runs the explicit causal AND padding
    # mask. The real tokens must see nothing of the pads, so their logits equal a run of the
    # unpadded sequence. One thing differs by design: positions are absolute and the model takes
    # no position ids, so after `pads` pads the real tokens sit at positions pads, pads + 1, ...
    # The reference therefore runs the same weights with the position table shifted by `pads`.
    model = small_gpt()
    real = torch.randint(3, 50, (1, 16 - pads))
    padded = torch.cat([torch.full((1, pads), PAD_ID), real], dim=1)  # (1, 16)
    mask = torch.cat([torch.zeros(1, pads, dtype=torch.bool), torch.ones_like(real, dtype=torch.bool)], dim=1)
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted.pos.weight[: 16 - pads] = model.pos.weight[pads:]
        got = model(padded, mask)[0, pads:]  # (16 - pads, V)
        want = shifted(real)[0]  # unpadded: the fused causal kernel, no mask at all
        garbage = padded.clone()
        garbage[0, :pads] = torch.randint(3, 50, (pads,))  # what the pads hold does not matter either
        again = model(garbage, mask)[0, pads:]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, got, atol=1e-6, rtol=1e-6)
    # and with a position table that is the same at every position, no shift is needed at all
    with torch.no_grad():
        model.pos.weight.copy_(model.pos.weight[:1].clone().expand_as(model.pos.weight))
        torch.testing.assert_close(model(padded, mask)[0, pads:], model(real)[0], atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient_and_weights_are_tied():
    model = small_gpt().train()
    loss, _ = DialogueLoss()(model, {"input_ids": torch.randint(3, 50, (2, 10))})
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert model.head.weight is model.tok.weight
    assert small_gpt(tie_weights=False).head.weight is not small_gpt(tie_weights=False).tok.weight


def test_kv_cache_logits_match_the_full_forward():
    from attnlab.layers import KVCache

    model = small_gpt()
    x = torch.randint(3, 50, (1, 12))
    with torch.no_grad():
        full = model(x)
        cache = KVCache(2)
        parts = [model(x[:, :5], cache=cache)] + [model(x[:, i:i + 1], cache=cache) for i in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_static_cache_writes_into_one_buffer_and_matches_the_uncached_logits():
    # Preallocated for the context: every step writes its position into the same (B, H, 16, hd)
    # storage (no per-token allocation), and the logits equal the full forward's.
    from attnlab.layers import KVCache

    model = small_gpt()
    x = torch.randint(3, 50, (2, 16))
    cache = KVCache(2, capacity=16)
    with torch.inference_mode():
        full = model(x)
        parts = [model(x[:, :3], cache=cache)]
        buffers = [layer._k.data_ptr() for layer in cache.layers]
        assert cache.layers[0]._k.shape == (2, 4, 16, 8)
        parts += [model(x[:, i:i + 1], cache=cache) for i in range(3, 16)]
        assert [layer._k.data_ptr() for layer in cache.layers] == buffers
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 16 and torch.equal(cache.layers[1].k, cache.layers[1]._k)


def test_left_padded_rows_with_their_own_positions_give_each_prompt_alone_logits():
    # A prompt of 3 after 4 pads, positions 0..2 and the pad mask: the same logits as the 3 tokens alone,
    # in the prompt and in each cached step after it.
    from attnlab.layers import KVCache

    model = small_gpt()
    short, long = torch.randint(3, 50, (1, 3)), torch.randint(3, 50, (1, 7))
    ids = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])  # (2, 7)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, :4] = False
    positions = torch.stack([torch.tensor([0, 0, 0, 0, 0, 1, 2]), torch.arange(7)])
    nxt = torch.randint(3, 50, (2, 3))
    with torch.inference_mode():
        cache, alone = KVCache(2, capacity=16), KVCache(2, capacity=16)
        got = [model(ids, mask, cache=cache, positions=positions)[:, 4:]]
        want = [model(short, cache=alone)]
        keys = torch.cat([mask, torch.ones(2, 3, dtype=torch.bool)], 1)  # (2, 10)
        for i in range(3):
            pos = torch.tensor([[3 + i], [7 + i]])
            got.append(model(nxt[:, i:i + 1], keys[:, : 8 + i], cache=cache, positions=pos))
            want.append(model(nxt[:1, i:i + 1], cache=alone))
        long_alone = model(torch.cat([long, nxt[1:]], 1))
    torch.testing.assert_close(torch.cat(got, 1)[0], torch.cat(want, 1)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(got, 1)[1], long_alone[0, 4:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_generation_gives_each_prompt_what_it_gets_alone(use_cache):
    # Prompts of different lengths (one empty, one longer than the context of 16); 40 tokens make
    # the windows jump at different steps for different rows.
    model = small_gpt(seed=3)
    prompts = [torch.randint(3, 50, (n,)).tolist() for n in (1, 5, 0, 20, 9)]
    batch = generate_batch(model, prompts, 40, use_cache=use_cache)
    assert batch == [generate(model, p, 40, use_cache=True) for p in prompts]
    sampled = generate_batch(model, prompts, 12, temperature=1.0, top_k=10, seed=4, use_cache=use_cache)
    assert sampled == [generate(model, p, 12, temperature=1.0, top_k=10, seed=4) for p in prompts]
    assert len({tuple(r) for r in batch}) > 1  # the rows really differ
    with pytest.raises(AttnlabError, match="no prompts to continue"):
        generate_batch(model, [], 3)


def test_batched_lstm_generation_runs_the_prompts_one_by_one():
    torch.manual_seed(0)
    lstm = LSTMLanguageModel(LSTMConfig(vocab_size=50, context=16, dim=16, hidden=32, num_layers=1)).eval()
    prompts = [[5, 6, 7], [8]]
    assert generate_batch(lstm, prompts, 6) == [generate(lstm, p, 6) for p in prompts]


def test_decoding_head_copy_follows_weight_updates():
    # One position without autograd multiplies by a cached transpose of the head weight; it must
    # be rebuilt after an optimizer step or a load_state_dict, never serve stale weights.
    model = small_gpt()
    x = torch.randint(3, 50, (2, 1))
    with torch.no_grad():
        before = model(x)
        model.tok.weight.add_(torch.randn_like(model.tok.weight))  # tied: the head changes too
        after = model(x)
    torch.testing.assert_close(after, model(x).detach(), atol=1e-6, rtol=1e-6)  # autograd path: no copy
    assert not torch.allclose(before, after)
    other = small_gpt(seed=1)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("prefix_len", [0, 1, 5, 30])
def test_greedy_generation_with_cache_is_identical_to_uncached(prefix_len):
    model = small_gpt(seed=prefix_len)  # context 16: 40 tokens slide the window several times
    prefix = torch.randint(3, 50, (prefix_len,)).tolist()
    cached = generate(model, prefix, 40, use_cache=True)
    uncached = generate(model, prefix, 40, use_cache=False)
    assert cached == uncached
    assert len(cached) == 40 and all(t not in (PAD_ID, START_ID) for t in cached)


def test_empty_prompt_starts_from_the_start_token_and_sampling_is_seeded():
    model = small_gpt()
    assert generate(model, [], 5) == generate(model, [START_ID], 5)
    s1 = generate(model, [START_ID], 20, temperature=1.0, seed=1)
    assert s1 == generate(model, [START_ID], 20, temperature=1.0, seed=1, use_cache=False)
    assert s1 != generate(model, [START_ID], 20, temperature=1.0, seed=2)
    assert generate(model, [START_ID], 10, temperature=1.0, top_k=1, seed=3) == generate(model, [START_ID], 10)
    assert generate(model, [START_ID], 10, temperature=1.0, top_p=1e-6, seed=3) == generate(model, [START_ID], 10)
    assert generate(model, [START_ID], 0) == []
    with pytest.raises(AttnlabError, match=r"top_p must be in \(0, 1\], got 0.0"):
        generate(model, [START_ID], 3, top_p=0.0)


def test_training_mode_is_restored_after_generation():
    model = small_gpt().train()
    generate(model, [START_ID], 3)
    assert model.training


def test_too_long_input_and_bad_config_give_clear_errors():
    model = small_gpt()
    with pytest.raises(AttnlabError, match="maximum length"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(AttnlabError, match="vocab_size must be set"):
        DialogueGPT(GPTConfig(vocab_size=0))
    with pytest.raises(AttnlabError, match="dim=30 must be divisible by num_heads=4"):
        DialogueGPT(GPTConfig(vocab_size=10, dim=30, num_heads=4))


@pytest.mark.parametrize("make, steps", [
    (lambda: small_gpt(dropout=0.0), 60),
    (lambda: (torch.manual_seed(0), LSTMLanguageModel(LSTMConfig(vocab_size=50, context=16, dim=32, hidden=128,
                                                                 num_layers=1, dropout=0.0)))[1], 200),
], ids=["gpt", "lstm"])
def test_overfits_one_batch(make, steps):
    model = make().train()
    # (no shared start token here: identical first inputs with different targets could not be fitted)
    batch = {"input_ids": torch.randint(3, 50, (4, 12)), "input_mask": torch.ones(4, 12, dtype=torch.bool)}
    batch["input_mask"][2, 8:] = False
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss, _ = DialogueLoss()(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    # Greedy decoding from each memorised row's first 3 tokens reproduces the rest of the row exactly
    # (the GPT through its KV cache, the LSTM through the uncached path).
    lengths = batch["input_mask"].sum(1).tolist()
    for row, n in zip(batch["input_ids"].tolist(), lengths):
        assert generate(model, row[:3], n - 3) == row[3:n]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ATTNLAB_SLOW") != "1", reason="slow: set ATTNLAB_SLOW=1")
def test_kv_cache_is_at_least_5x_faster_for_256_tokens():
    # The default preset's shape (random weights: the time depends on the shape only), timed in
    # interleaved rounds like `attnlab bench generate`.
    from attnlab.measure import median, time_interleaved

    torch.manual_seed(0)
    model = DialogueGPT(GPTConfig(vocab_size=6187)).eval()
    out = {}
    samples = time_interleaved({c: (lambda c=c: out.__setitem__(c, generate(model, [START_ID], 256, use_cache=c)))
                                for c in (True, False)}, repeats=3)
    assert out[True] == out[False]
    ratio = median(samples[False]) / median(samples[True])
    assert ratio >= 5.0, f"KV cache speed-up {ratio:.1f}x < 5x"
