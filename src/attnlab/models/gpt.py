"""DialogueGPT: a decoder-only Transformer language model, its masked loss, and generation.

``DialogueGPT`` = token embedding + learned positional embedding -> the core pre-norm
:class:`attnlab.layers.Transformer` under a causal mask (combined with the padding mask when
one is given) -> final LayerNorm -> language-model head (tied to the token embedding by
default). ``generate`` is greedy or sampled decoding with a key/value cache. The loss it trains
with, :class:`attnlab.losses.DialogueLoss`, is next-token cross-entropy over real tokens only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.attention import causal_mask, combine_masks, padding_mask
from attnlab.errors import AttnlabError
from attnlab.layers import KVCache, Transformer
from attnlab.memory import count_parameters
from attnlab.models.configs import DECODE_ENV, GPTConfig, SampleConfig, decode_backend
from attnlab.models.gpt_step import DecodeStep
from attnlab.positional import LearnedPositionalEmbedding
from attnlab.threads import StallWatch
from attnlab.vocab import PAD_ID, START_ID

__all__ = ["GPTConfig", "DialogueGPT", "generate", "iter_generate", "generate_batch", "iter_generate_batch",
           "SampleConfig", "random_gpt"]


class DialogueGPT(nn.Module):
    """``forward(input_ids (B, T), input_mask (B, T_k) | None, *, cache) -> logits (B, T, V)``.

    ``input_mask`` (True/1 = real token) covers every key position, i.e. the cached ones too when
    a ``cache`` is given; it is combined with the causal mask. One shortcut: when the padding is
    all on the right (as the language-model batches make it), the causal mask alone
    already hides every pad from every real token (pads come after it), so the fused causal
    kernel runs instead (on CPU the explicit-mask path costs more) and the real positions' logits
    are the same; only the outputs at pad positions, which nothing uses, differ.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        if c.vocab_size <= 0:
            raise AttnlabError("GPTConfig.vocab_size must be set (it comes from the tokenizer)")
        if c.dim % c.num_heads:
            raise AttnlabError(f"dim={c.dim} must be divisible by num_heads={c.num_heads}")
        self.config = c
        # ids generation never picks: attnlab's pad and start tokens (never targets in training); a
        # pretrained tokenizer's model clears it (GPT-2's ids 0 and 2 are ordinary tokens)
        self.never_generated: tuple[int, ...] = (PAD_ID, START_ID)
        self.tok = nn.Embedding(c.vocab_size, c.dim)
        self.pos = LearnedPositionalEmbedding(max_len=c.context, dim=c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.transformer = Transformer(c.dim, c.dim // c.num_heads, c.mlp_dim, c.num_heads, c.num_layers,
                                       dropout=c.dropout, attn_dropout=c.attn_dropout, bias=c.bias,
                                       activation=c.activation, norm_eps=c.norm_eps, native=True)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps, bias=c.bias)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        if c.tie_weights:
            self.head.weight = self.tok.weight
        self._head_t: Tensor | None = None  # (dim, V) copy of the head weight for decoding
        self._head_t_key: tuple[int, int] | None = None
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * layers).
        for name, p in self.named_parameters():
            if name.endswith(("attn.W_O.weight", "mlp.fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.num_layers))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, input_ids: Tensor, input_mask: Tensor | None = None, *, cache: KVCache | None = None,
                last_only: bool = False, positions: Tensor | None = None) -> Tensor:
        """Logits (B, T, V); with ``last_only`` only the last position's, (B, 1, V) (decoding).

        ``positions`` (B, T), when given, are the positions of the tokens in their own rows
        (left-padded decoding batches: a row's first real token is position 0 whatever the
        padding before it); by default they follow the cache, ``offset .. offset + T - 1``.
        """
        B, T = input_ids.shape
        offset = cache.length if cache is not None else 0
        if positions is None:
            x = self.pos(self.tok(input_ids), offset=offset)  # (B, T, dim)
        else:
            x = self.tok(input_ids) + self._position_vectors(positions)  # (B, T, dim)
        if self.training:
            x = self.drop(x)
        if input_mask is not None and tuple(input_mask.shape) != (B, offset + T):
            raise ValueError(f"input_mask must be ({B}, {offset + T}), got {tuple(input_mask.shape)}")
        if input_mask is None or (cache is None and _right_padded(input_mask)):
            # The fused kernel's own causal path; a single new query may see every cached key.
            attn_mask, is_causal = None, T > 1
        else:
            causal = causal_mask(T, offset + T, device=input_ids.device)  # (T, T_k)
            attn_mask, is_causal = combine_masks(causal, padding_mask(input_mask)), False  # (B, 1, T, T_k)
        h, _ = self.transformer(x, attn_mask, is_causal=is_causal, cache=cache)
        if last_only:
            h = h[:, -1:]  # (B, 1, dim): the head runs on the position whose next token is wanted
        return self._logits(self.norm(h))  # (B, T, V)

    def _position_vectors(self, positions: Tensor) -> Tensor:
        """The learned position vectors of ``positions`` (B, T) -> (B, T, dim), bounded by the context."""
        if int(positions.max()) >= self.pos.max_len:
            raise AttnlabError(f"position {int(positions.max())} exceeds the maximum length {self.pos.max_len} "
                               "of this model's learned positional embedding; shorten the input")
        return self.pos.weight[positions]

    def _logits(self, h: Tensor) -> Tensor:
        """The LM head, (B, T, dim) -> (B, T, V).

        Decoding several rows (one position each, no autograd) multiplies by
        :meth:`_head_weight_t` instead. One row is the weight times a vector either way (the
        numbers :class:`attnlab.models.gpt_step.DecodeStep` gives).
        """
        if h.size(1) != 1 or h.size(0) == 1 or torch.is_grad_enabled():
            return self.head(h)
        return h @ self._head_weight_t()

    def _head_weight_t(self) -> Tensor:
        """A contiguous (dim, V) transpose of the head weight, for decoding batches: on the CPU
        several rows times the (V, dim) weight are slower than times its contiguous transpose,
        and the head is the largest matrix of a decoding step. The copy is rebuilt
        whenever the weight changes (its storage or version counter moves)."""
        w = self.head.weight
        key = (w.data_ptr(), w._version)
        if self._head_t is None or self._head_t_key != key:
            self._head_t, self._head_t_key = w.detach().t().contiguous(), key  # (dim, V)
        return self._head_t

    def attend(self, input_ids: Tensor) -> Attended:
        """Logits (B, T, V) of unpadded ``input_ids`` (B, T) and every layer's weights (B, H, T, T).

        The weights come from the blocks' own ``need_weights`` path under the causal mask: row
        ``i`` of a layer's weights is what position ``i`` attended to when it predicted token ``i + 1``.
        """
        if input_ids.size(1) > self.config.context:
            raise AttnlabError(f"{input_ids.size(1)} tokens are more than the model's context of "
                               f"{self.config.context}; pass fewer tokens")
        x = self.pos(self.tok(input_ids))  # (B, T, dim)
        if self.training:
            x = self.drop(x)
        h, weights = self.transformer(x, is_causal=True, need_weights=True)
        assert weights is not None
        return Attended(self.head(self.norm(h)), weights, causal=True)

    def no_weight_decay(self) -> set[str]:
        """The position table is a lookup table, not a linear map: AdamW leaves it undecayed."""
        return {"pos.weight"}

    def num_parameters(self) -> int:
        return count_parameters(self)

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), as nanoGPT counts them: 6 per parameter
        (the position table excluded) plus the attention scores, 12 * layers * dim * context."""
        c = self.config
        return 6.0 * (self.num_parameters() - self.pos.weight.numel()) + 12.0 * c.num_layers * c.dim * c.context


def _right_padded(input_mask: Tensor) -> bool:
    """True when every row is real tokens followed only by padding: 1...1 0...0."""
    m = input_mask.to(torch.bool)
    return bool((m[:, 1:] <= m[:, :-1]).all())


_NAN = ("the model's outputs are not numbers (NaN): its weights are broken (a diverged training?); retrain it "
        "or use an earlier checkpoint")


def _pick(logits: Tensor, ban: Tensor, temperature: float, top_k: int | None, top_p: float | None,
          gen: torch.Generator) -> int:
    """Choose the next id from (V,) logits: argmax when ``temperature <= 0``, else sample.

    ``ban`` (V,) is 0, or -inf for the ids never generated (pad and start: never targets in training).
    """
    logits = logits.float() + ban  # a new tensor: the in-place edits below leave the model output alone
    if torch.isnan(logits).any():
        raise AttnlabError(_NAN)
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token already >= p
        logits[order[drop]] = -math.inf
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _greedy(logits: Tensor, banned: Tensor) -> tuple[list[int], Tensor]:
    """The most likely allowed id of each row of ``logits`` (B, V), as a list and as a (B, 1) tensor
    (the next step's input). The same choice as :func:`_pick` at temperature 0, in fewer operations:
    the ``banned`` ids are set to -inf in place (``logits`` is the model's fresh output), and one
    ``max`` gives the ids and the NaN check (a NaN anywhere in a row is that row's maximum)."""
    if logits.dtype != torch.float32:
        logits = logits.float()
    logits.index_fill_(-1, banned, -math.inf)
    values, ids = logits.max(-1)  # (B,) each
    if any(math.isnan(v) for v in values.tolist()):
        raise AttnlabError(_NAN)
    return ids.tolist(), ids.view(-1, 1)


def generate(
    model: nn.Module,
    prefix_ids: Sequence[int] | Tensor,
    num_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    decode: str | None = None,
) -> list[int]:
    """Continue ``prefix_ids`` by ``num_tokens`` new ids (returned without the prefix).

    Greedy when ``temperature`` is 0, else sampled from ``softmax(logits / temperature)``
    restricted to the ``top_k`` most likely ids and/or the smallest set holding ``top_p`` of
    the probability; ``seed`` makes sampling reproducible. An empty prefix starts from the start
    token. The model sees at most ``context`` tokens: when the text outgrows it, the window jumps
    forward to the last ``context // 2`` tokens. Both paths follow this rule, so with
    ``use_cache`` (keys and values of earlier positions kept in a static cache, one new position
    computed per token; the cache is rebuilt after a jump) the greedy output is identical to the
    uncached one (the whole window recomputed for every token, the output layer applied to its
    last position only, as nanoGPT does). ``use_cache`` needs a :class:`DialogueGPT`; other
    language models (the LSTM) run the uncached path. ``decode`` chooses what runs the cached
    one-row step (:class:`attnlab.models.gpt_step.DecodeStep`): ``auto``, ``python`` or ``cpp``, by
    default ``ATTNLAB_DECODE`` (else ``auto``); every choice gives the same numbers.
    :func:`iter_generate` yields the ids one at a time; :func:`generate_batch` continues several
    prompts at once.
    """
    return list(iter_generate(model, prefix_ids, num_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                              seed=seed, use_cache=use_cache, decode=decode))


def iter_generate(
    model: nn.Module,
    prefix_ids: Sequence[int] | Tensor,
    num_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    decode: str | None = None,
) -> Iterator[int]:
    """:func:`generate`, yielding each new id as soon as it is chosen (to stream long outputs)."""
    for ids in iter_generate_batch(model, [prefix_ids], num_tokens, temperature=temperature, top_k=top_k,
                                   top_p=top_p, seed=seed, use_cache=use_cache, decode=decode):
        yield ids[0]


def generate_batch(
    model: nn.Module,
    prompts: Sequence[Sequence[int] | Tensor],
    num_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    decode: str | None = None,
) -> list[list[int]]:
    """Continue every prompt of ``prompts`` by ``num_tokens`` new ids, all in one batch.

    The prompts are left-padded to the longest; each row gets the padding mask and its own
    positions (its first real token is position 0), so row ``i`` is what :func:`generate` gives
    for ``prompts[i]`` alone, with the same settings: greedily, and sampled too (each row draws
    from its own generator seeded with ``seed``). A model other than :class:`DialogueGPT` runs
    the prompts one after another.
    """
    rows: list[list[int]] = [[] for _ in prompts]
    for ids in iter_generate_batch(model, prompts, num_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                   seed=seed, use_cache=use_cache, decode=decode):
        for row, i in zip(rows, ids):
            row.append(i)
    return rows


def _check_settings(num_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
                    seed: int | None) -> None:
    if num_tokens < 0:
        raise AttnlabError(f"num_tokens must be >= 0, got {num_tokens}")
    if not math.isfinite(temperature) or temperature < 0:
        raise AttnlabError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise AttnlabError(f"top_k must be >= 1 (or None for all ids), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise AttnlabError(f"top_p must be in (0, 1], got {top_p}")
    if seed is not None and not 0 <= seed < 2**63:
        raise AttnlabError(f"seed must be between 0 and 2**63 - 1, got {seed}")


def _windows(rows: list[list[int]], starts: list[int],
             device: torch.device) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Each row's window ``rows[i][starts[i]:]``, left-padded to the longest: the ids (B, T) and,
    when some row is padded, its mask (B, T; True = real token), each token's position in its
    own row (B, T) and the pads per row (B, 1); else three Nones."""
    windows = [ids[s:] for ids, s in zip(rows, starts)]
    T = max(len(w) for w in windows)
    pads = [T - len(w) for w in windows]
    ids = torch.tensor([[PAD_ID] * p + w for p, w in zip(pads, windows)], device=device)  # (B, T)
    if not any(pads):
        return ids, None, None, None
    pad = torch.tensor(pads, device=device).view(-1, 1)  # (B, 1)
    steps = torch.arange(T, device=device)  # (T,)
    return ids, steps >= pad, (steps - pad).clamp_min(0), pad  # mask, positions (B, T); pad (B, 1)


def iter_generate_batch(
    model: nn.Module,
    prompts: Sequence[Sequence[int] | Tensor],
    num_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    decode: str | None = None,
) -> Iterator[list[int]]:
    """:func:`generate_batch`, yielding the new id of every row at each step."""
    _check_settings(num_tokens, temperature, top_k, top_p, seed)
    if decode is not None:
        decode_backend({DECODE_ENV: decode})  # a bad value stops here, before the first id
    rows = [[int(i) for i in p] or [START_ID] for p in prompts]
    if not rows:
        raise AttnlabError("no prompts to continue; pass at least one")
    if len(rows) > 1 and not isinstance(model, DialogueGPT):  # no padding path: one prompt at a time
        outs = [list(iter_generate_batch(model, [r], num_tokens, temperature=temperature, top_k=top_k,
                                         top_p=top_p, seed=seed, use_cache=use_cache, decode=decode)) for r in rows]
        for column in zip(*outs):
            yield [ids[0] for ids in column]
        return
    config: Any = model.config  # DialogueGPT's GPTConfig or the LSTM's LSTMConfig
    context, B = config.context, len(rows)
    use_cache = use_cache and isinstance(model, DialogueGPT)
    device = next(model.parameters()).device
    gens = [torch.Generator(device=device) for _ in rows] if temperature > 0 else []
    for gen in gens:
        if seed is not None:
            gen.manual_seed(seed)
        else:
            gen.seed()
    was_training = model.training
    model.eval()
    never = list(getattr(model, "never_generated", (PAD_ID, START_ID)))  # none for a pretrained tokenizer's model
    ban = torch.zeros(config.vocab_size, device=device)
    ban[never] = -math.inf
    banned = torch.tensor(never, dtype=torch.long, device=device)
    starts = [max(0, len(ids) - context) for ids in rows]  # first position of each row's window
    cache: KVCache | None = None
    step: DecodeStep | None = None  # the cached step, built at its first use
    watch = StallWatch()  # beside a busy process, steps that stall move to one thread (attnlab.threads)
    keys = pad = nxt = None  # a padded batch's key mask (B, context) and pads (B, 1); the next ids (B, 1)
    try:
        for _ in range(num_tokens):
            for i, ids in enumerate(rows):
                if len(ids) - starts[i] > context:
                    starts[i] = len(ids) - max(1, context // 2)
                    cache = None
            if cache is not None and step is not None and step.backend == "cpp" and B == 1 and not gens:
                # one row, greedy, in C++: the step and the pick in one call, in its own inference mode
                one_step, last, kv = step, rows[0][-1], cache  # (narrowed for the closure)
                picked, top = watch.run(lambda: one_step.pick(last, kv, banned))
                if math.isnan(top):
                    raise AttnlabError(_NAN)
                chosen, nxt = [picked], None  # (a new window computes its own next ids)
            else:
                with torch.inference_mode():
                    if not use_cache or cache is None:  # the whole window (and a new cache, primed with it)
                        window, mask, positions, pad = _windows(rows, starts, device)
                        cache = KVCache(config.num_layers, capacity=context) if use_cache else None
                        if mask is not None and use_cache:
                            keys = torch.ones(B, context, dtype=torch.bool, device=device)
                            keys[:, : mask.size(1)] = mask
                        args = {"positions": positions} if positions is not None else {}  # (the LSTM takes none)
                        logits = watch.run(lambda: model(window, mask, cache=cache, last_only=True, **args)[:, -1],
                                           observe=False)  # (B, V)
                    else:  # one new position per row over the cached ones
                        assert nxt is not None
                        offset = cache.length
                        if step is None:
                            assert isinstance(model, DialogueGPT)  # (use_cache needs one)
                            step = DecodeStep(model, backend=decode)
                        one_step, ids_now, kv = step, nxt, cache  # (narrowed for the closures)
                        if pad is None:
                            logits = watch.run(lambda: one_step(ids_now, kv))
                        else:
                            assert keys is not None
                            seen, pos = keys[:, : offset + 1], offset - pad
                            logits = watch.run(lambda: one_step(ids_now, kv, seen, pos))
                    if gens:
                        chosen = [_pick(logits[i], ban, temperature, top_k, top_p, gen) for i, gen in enumerate(gens)]
                        nxt = torch.tensor(chosen, device=device).view(B, 1)
                    else:
                        chosen, nxt = _greedy(logits, banned)
            for ids, i in zip(rows, chosen):
                ids.append(i)
            yield chosen
    finally:
        model.train(was_training)


def random_gpt(shape: GPTConfig, *, seed: int = 0) -> DialogueGPT:
    """A DialogueGPT of ``shape`` with random weights drawn from ``seed`` (eval mode): for the
    benchmarks, whose timings depend on the shape, not on the weights."""
    shape.check()
    torch.manual_seed(seed)
    return DialogueGPT(shape).eval()
