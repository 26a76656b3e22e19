"""Greedy decoding and batched beam search for the encoder-decoder models.

Both work with any model that offers the decoding interface of :mod:`attnlab.models.seq2seq` and
:mod:`attnlab.models.rnn_seq2seq`::

    state = model.start(src, cache=True)   # encode the sources (N, S) once
    logits = model.step(state, tokens)     # feed one token per row (N,), get the next logits (N, V)
    model.reorder(state, index)            # keep rows `index` of the state (beams that survive)

Every hypothesis starts with ``bos``; one that produced ``eos`` is finished and continues with
``pad`` at no cost. Beam search keeps ``beam`` hypotheses per sentence, ranked by their summed
log-probabilities, and at the end picks the best by ``score / ((5 + length) / 6) ** length_penalty``
(the GNMT length normalisation; ``length_penalty=0`` compares raw scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Decoded", "greedy_decode", "beam_search", "strip", "translate_ids"]


@dataclass
class Decoded:
    tokens: Tensor  # (N, L) generated ids, ``pad`` after each row's ``eos``
    scores: Tensor  # (N,) summed log-probabilities of each row's tokens (eos included)
    logits: Tensor | None = None  # (N, L, V) the logits of each step (greedy with keep_logits)


@torch.no_grad()
def greedy_decode(model: Any, src: Tensor, *, bos: int, eos: int, pad: int, max_len: int, cache: bool = True,
                  keep_logits: bool = False) -> Decoded:
    """The most likely token at each step, for all rows at once, until every row ended or ``max_len``."""
    n = src.size(0)
    state = model.start(src, cache=cache)
    token = src.new_full((n,), bos)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    scores = torch.zeros(n, device=src.device)
    out: list[Tensor] = []
    steps: list[Tensor] = []
    for _ in range(max_len):
        logits = model.step(state, token).float()  # (n, V)
        if keep_logits:
            steps.append(logits)
        logp = torch.log_softmax(logits, -1)
        token = logits.argmax(-1)
        scores += torch.where(done, 0.0, logp.gather(1, token[:, None]).squeeze(1))
        token = token.masked_fill(done, pad)
        out.append(token)
        done |= token == eos
        if bool(done.all()):
            break
    tokens = torch.stack(out, 1) if out else src.new_zeros(n, 0)
    return Decoded(tokens, scores, torch.stack(steps, 1) if keep_logits and steps else None)


@torch.no_grad()
def beam_search(model: Any, src: Tensor, *, bos: int, eos: int, pad: int, max_len: int, beam: int = 4,
                length_penalty: float = 0.6) -> Decoded:
    """Batched beam search: ``beam`` hypotheses for each of the N sentences, advanced together."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    n, k = src.size(0), beam
    device = src.device
    state = model.start(src, cache=True)
    model.reorder(state, torch.arange(n, device=device).repeat_interleave(k))  # (n*k) rows: sentence-major
    scores = torch.zeros(n, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: only the first one may grow
    tokens = src.new_zeros(n * k, 0)
    last = src.new_full((n * k,), bos)
    done = torch.zeros(n * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(n * k, device=device)
    for _ in range(max_len):
        logp = torch.log_softmax(model.step(state, last).float(), -1)  # (n*k, V)
        vocab = logp.size(-1)
        logp[done] = float("-inf")
        logp[done, pad] = 0.0  # a finished hypothesis continues with padding, at no cost
        cand = (scores.view(n * k, 1) + logp).view(n, k * vocab)
        top, idx = cand.topk(k, dim=1)  # (n, k)
        rows = (torch.arange(n, device=device)[:, None] * k + idx // vocab).view(-1)  # the beams they extend
        last = (idx % vocab).view(-1)
        tokens = torch.cat([tokens.index_select(0, rows), last[:, None]], 1)
        lengths = lengths.index_select(0, rows) + (~done.index_select(0, rows)).float()
        done = done.index_select(0, rows) | (last == eos)
        scores = top
        model.reorder(state, rows)
        if bool(done.all()):
            break
    norm = scores / ((5.0 + lengths.view(n, k)) / 6.0) ** length_penalty
    best = norm.argmax(1)  # (n,)
    pick = torch.arange(n, device=device) * k + best
    return Decoded(tokens.index_select(0, pick), scores.view(-1).index_select(0, pick))


def strip(row: list[int], *, eos: int, pad: int) -> list[int]:
    """A decoded row's ids up to (without) the first ``eos``, padding dropped."""
    out = []
    for t in row:
        if t == eos:
            break
        if t != pad:
            out.append(t)
    return out


def translate_ids(model: Any, sources: list[list[int]], *, bos: int, eos: int, pad: int, max_len: int,
                  beam: int = 4, length_penalty: float = 0.6, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> list[list[int]]:
    """Decode each source (a list of ids) and return the output ids (eos and padding dropped), in
    order. Sentences are batched by length (little padding); ``beam`` 1 decodes greedily."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: list[list[int]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(1, max(len(sources[i]) for i in chunk))
        src = torch.full((len(chunk), width), pad, dtype=torch.long)
        for row, i in enumerate(chunk):
            src[row, : len(sources[i])] = torch.tensor(sources[i], dtype=torch.long)
        src = src.to(device)
        if beam == 1:
            found = greedy_decode(model, src, bos=bos, eos=eos, pad=pad, max_len=max_len)
        else:
            found = beam_search(model, src, bos=bos, eos=eos, pad=pad, max_len=max_len, beam=beam,
                                length_penalty=length_penalty)
        for row, i in enumerate(chunk):
            out[i] = strip(found.tokens[row].tolist(), eos=eos, pad=pad)
    return out
