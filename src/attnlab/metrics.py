"""Metrics from summed statistics: loss, accuracy, perplexity, and a classification report."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

__all__ = ["summarize", "classification_report"]


def summarize(sums: dict[str, float], prefix: str, perplexity: bool = False) -> dict[str, float]:
    """``loss_sum/count`` -> ``{prefix}loss``, ``correct/count`` -> ``{prefix}accuracy`` and,
    with ``perplexity``, ``exp({prefix}loss)`` -> ``{prefix}perplexity``."""
    count = sums.get("count", 0.0)
    if count <= 0:
        raise AttnlabError(f"no {prefix.rstrip('_') or 'evaluation'} examples were seen (stats['count'] == 0); "
                           "check that the data set is not empty")
    out = {f"{prefix}loss": sums["loss_sum"] / count}
    if "correct" in sums:
        out[f"{prefix}accuracy"] = sums["correct"] / count
    if perplexity:
        out[f"{prefix}perplexity"] = math.exp(min(out[f"{prefix}loss"], 700.0))
    return out


def classification_report(labels: Tensor, preds: Tensor, names: Sequence[str],
                          prefix: str = "test_") -> dict[str, float]:
    """Accuracy, per-class precision / recall / F1 and the confusion matrix, as flat floats.

    ``{prefix}confusion_T_P`` counts the examples of true class T predicted as P.
    """
    k = len(names)
    conf = torch.bincount(labels * k + preds, minlength=k * k).reshape(k, k)  # rows: true, cols: predicted
    out = {f"{prefix}accuracy": float((labels == preds).float().mean()) if len(labels) else 0.0}
    for c, name in enumerate(names):
        tp = float(conf[c, c])
        precision = tp / max(float(conf[:, c].sum()), 1.0)
        recall = tp / max(float(conf[c, :].sum()), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        out.update({f"{prefix}precision_{name}": precision, f"{prefix}recall_{name}": recall,
                    f"{prefix}f1_{name}": f1})
    for t, tn in enumerate(names):
        for p, pn in enumerate(names):
            out[f"{prefix}confusion_{tn}_{pn}"] = float(conf[t, p])
    return out
