"""Metrics against hand computations: the summary of sums, calibration error, temperature scaling."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.metrics import expected_calibration_error, fit_temperature, summarize


def test_summarize_turns_sums_into_means():
    out = summarize({"loss_sum": 6.0, "count": 4.0, "correct": 3.0}, "val_", perplexity=True)
    assert out == {"val_loss": 1.5, "val_accuracy": 0.75, "val_perplexity": math.exp(1.5)}


def test_expected_calibration_error_by_hand():
    # four predictions: confidences 0.9, 0.9 (one right, one wrong) and 0.6, 0.6 (both right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1, 1])
    ece, table = expected_calibration_error(probs, labels, bins=10)
    # two non-empty bins: confidence 0.9 with accuracy 0.5, confidence 0.6 with accuracy 1.0
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert [(b["count"], b["accuracy"]) for b in table] == [(2, 1.0), (2, 0.5)]
    assert [b["confidence"] for b in table] == pytest.approx([0.6, 0.9])


def test_a_perfectly_calibrated_model_has_zero_error():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1]))[0] == 0.0


def test_temperature_scaling_recovers_the_temperature_of_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 2, generator=g) * 1.5
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=g).squeeze(1)
    t = fit_temperature(true_logits * 3.0, labels)  # the model is 3x too confident
    assert t == pytest.approx(3.0, rel=0.05)
    over = torch.softmax(true_logits * 3.0, -1)
    fixed = torch.softmax(true_logits * 3.0 / t, -1)
    assert expected_calibration_error(fixed, labels)[0] < 0.3 * expected_calibration_error(over, labels)[0]
