"""The losses every task trains with, in the engine's ``(loss, stats)`` form.

A loss returns the mean loss to back-propagate and a dict of *sums* (``loss_sum``, ``count``
and, for classifiers, ``correct``), which :func:`attnlab.metrics.summarize` turns into
``val_loss``, ``val_accuracy`` and ``val_perplexity`` however the examples were batched.

* :func:`classification_loss`: cross-entropy over class logits (optionally label-smoothed);
* :func:`lm_loss`: next-token cross-entropy over the real tokens of a padded batch;
* :class:`DialogueLoss`: the engine's ``loss_fn(model, batch)`` for any language model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["IGNORE_INDEX", "Stats", "classification_loss", "lm_loss", "DialogueLoss"]

IGNORE_INDEX = -100  # target id that cross_entropy skips (padding, positions with no next token)
Stats = dict[str, Any]  # sums: floats or 0-d tensors


def classification_loss(logits: Tensor, labels: Tensor, *, label_smoothing: float = 0.0,
                        targets: Tensor | None = None) -> tuple[Tensor, Stats]:
    """Cross-entropy of ``logits`` (B, classes) against ``labels`` (B,), or against soft
    ``targets`` (B, classes) when a batch was mixed (mixup, cutmix; accuracy still uses ``labels``).

    With ``label_smoothing`` the returned loss is the smoothed one (to train on), while
    ``stats["loss_sum"]`` sums the plain cross-entropy, so the logged loss means the same with
    and without smoothing.
    """
    logits = logits.float()
    target = labels if targets is None else targets
    loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    with torch.no_grad():
        plain = loss if label_smoothing == 0.0 else F.cross_entropy(logits, target)
        correct = (logits.argmax(-1) == labels).sum()
    return loss, {"loss_sum": plain.detach() * len(labels), "count": len(labels), "correct": correct}


def lm_loss(logits: Tensor, input_ids: Tensor, input_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Next-token cross-entropy: ``(mean, sum, count)`` over the real target tokens.

    For an example of T tokens there are T-1 terms: logit ``i`` predicts token ``i+1``; the
    first token (the start token) is never a target, the last logit has no target, and a target
    that is padding (``input_mask`` 0) is skipped. ``mean = sum / count``.
    """
    B, T, V = logits.shape
    targets = torch.full_like(input_ids, IGNORE_INDEX)  # (B, T): position T-1 stays ignored
    targets[:, :-1] = input_ids[:, 1:]
    if input_mask is not None:
        targets[:, :-1].masked_fill_(~input_mask[:, 1:].to(torch.bool), IGNORE_INDEX)
    # Flattening the full logits (no slice) avoids copying the (B, T, V) tensor.
    total = F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    count = (targets != IGNORE_INDEX).sum()
    return total / count.clamp_min(1), total, count


class DialogueLoss:
    """The engine's ``loss_fn(model, batch) -> (mean loss, stats)`` for any language model whose
    ``forward(input_ids, input_mask)`` returns (B, T, V) logits. ``stats`` sums the loss over the
    ``count`` target tokens, and counts the real input ``tokens`` (for tokens/s).

    A batch of padded examples (``input_ids``, ``input_mask``) predicts each next token within
    it (:func:`lm_loss`); a batch of stream windows also holds ``labels``, the next token of every
    position (nanoGPT's ``x, y``), and every position is a target.
    """

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Stats]:
        ids, mask, labels = batch["input_ids"], batch.get("input_mask"), batch.get("labels")
        logits = model(ids, mask)
        if labels is not None:
            total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), reduction="sum")
            count = torch.tensor(labels.numel(), device=labels.device)
            mean = total / count
        else:
            mean, total, count = lm_loss(logits, ids, mask)
        tokens = mask.sum() if mask is not None else ids.numel()
        return mean, {"loss_sum": total.detach(), "count": count, "tokens": tokens}
