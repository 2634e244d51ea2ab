"""Minimum Class Confusion: the loss against a plain loop reference and known values."""
import math

import pytest
import torch

from tlcore.losses import mcc_loss, prediction_entropy


def _mcc_by_loops(logits, temperature):
    """Slow plain reference, written from the paper's equations (Jin et al., ECCV 2020, eqs. 1-6)."""
    rows = logits.tolist()
    batch, classes = len(rows), len(rows[0])
    probs = []
    for row in rows:
        exps = [math.exp(v / temperature) for v in row]
        probs.append([e / sum(exps) for e in exps])
    entropies = [-sum(p * math.log(p) for p in row if p > 0) for row in probs]
    raw = [1 + math.exp(-h) for h in entropies]
    weights = [batch * r / sum(raw) for r in raw]
    confusion = [[sum(probs[i][j] * weights[i] * probs[i][k] for i in range(batch)) for k in range(classes)]
                 for j in range(classes)]
    normalised = [[confusion[j][k] / sum(confusion[j]) for k in range(classes)] for j in range(classes)]
    return sum(normalised[j][k] for j in range(classes) for k in range(classes) if j != k) / classes


@pytest.mark.parametrize("batch,classes,temperature", [(1, 2, 1.0), (7, 3, 2.5), (32, 10, 2.5), (16, 5, 0.5)])
def test_mcc_matches_loop_reference(batch, classes, temperature):
    logits = torch.randn(batch, classes, generator=torch.Generator().manual_seed(batch), dtype=torch.float64) * 3
    assert mcc_loss(logits, temperature).item() == pytest.approx(_mcc_by_loops(logits, temperature), rel=1e-10)
    assert mcc_loss(logits.float(), temperature).item() == pytest.approx(_mcc_by_loops(logits, temperature), rel=1e-5)


def test_confident_one_hot_predictions_with_every_class_have_no_confusion():
    labels = torch.arange(12) % 4
    logits = 40.0 * torch.nn.functional.one_hot(labels, 4).float()
    assert mcc_loss(logits, temperature=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_uniform_predictions_confuse_every_class():
    for classes in (2, 5, 10):
        assert mcc_loss(torch.zeros(8, classes)).item() == pytest.approx((classes - 1) / classes, rel=1e-6)


def test_confusion_falls_as_predictions_sharpen_and_the_gradient_sharpens_them():
    labels = torch.arange(20) % 5
    base = torch.nn.functional.one_hot(labels, 5).float() + 0.3 * torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    values = [mcc_loss(scale * base).item() for scale in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert values == sorted(values, reverse=True)
    logits = base.clone().requires_grad_(True)
    mcc_loss(logits).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    stepped = (base - 1.0 * logits.grad).detach()
    assert mcc_loss(stepped) < mcc_loss(base)


def test_mcc_survives_underflow_and_rejects_bad_input():
    logits = torch.tensor([[1e4, 0.0, 0.0], [1e4, 0.0, 0.0]])  # classes 1 and 2 underflow to exactly 0
    assert torch.isfinite(mcc_loss(logits, temperature=1.0))
    with pytest.raises(ValueError, match="shape"):
        mcc_loss(torch.zeros(4, 1))
    with pytest.raises(ValueError, match="temperature"):
        mcc_loss(torch.zeros(4, 3), temperature=0.0)


def test_prediction_entropy_known_values():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    expected = [0.0, math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert prediction_entropy(p).tolist() == pytest.approx(expected, abs=1e-7)
