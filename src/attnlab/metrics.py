"""Metrics from summed statistics: loss, accuracy, perplexity, a classification report, and
calibration (expected calibration error, temperature scaling, the reliability diagram)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.files import save_figure

__all__ = ["summarize", "classification_report", "expected_calibration_error", "fit_temperature",
           "reliability_diagram"]


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


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> tuple[float, list[dict[str, float]]]:
    """ECE of predicted class probabilities ``probs`` (N, classes) against ``labels`` (N,).

    The predictions are grouped by confidence (the top probability) into ``bins`` equal-width
    bins; ECE is the mean over predictions of |accuracy - confidence| of their bin. Returns the
    ECE and, for a reliability diagram, each non-empty bin's ``lo``, ``hi``, ``count``,
    ``confidence`` and ``accuracy``.
    """
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    which = torch.clamp(torch.bucketize(confidence.double(), edges, right=True) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n == 0:
            continue
        conf, acc = float(confidence[inside].double().mean()), float(correct[inside].mean())
        ece += n / len(labels) * abs(acc - conf)
        table.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n, "confidence": conf,
                      "accuracy": acc})
    return ece, table


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 minimising the cross-entropy of
    ``softmax(logits / T)`` on held-out data. One parameter, so accuracy is unchanged."""
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    x, y = logits.detach().double(), labels
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def reliability_diagram(tables: dict[str, list[dict[str, float]]], path: Path, *, title: str) -> Path:
    """Draw accuracy against confidence for each labelled table of
    :func:`expected_calibration_error` (beside the diagonal of perfect calibration); write ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    for label, table in tables.items():
        ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], "o-", label=label)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
