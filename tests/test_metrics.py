"""tlcore.metrics against plain references (loops, numpy, scikit-learn) and known values."""
import math

import numpy as np
import pytest
import torch

from tlcore import metrics
from tlcore.losses import gaussian_bandwidths, median_sq_distance, mmd2_unbiased
from tlcore.metrics import (MMDTestResult, PADResult, accuracy, confusion_matrix, coral_distance, mmd2,
                            mmd_permutation_test, negative_transfer_gap, per_class_accuracy, proxy_a_distance)


def samples(m, n, d, shift=0.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype) + shift


# --- accuracy -------------------------------------------------------------------------------

def test_accuracy_known_values_and_logits():
    labels = torch.tensor([0, 1, 2, 2])
    assert accuracy(torch.tensor([0, 1, 1, 2]), labels) == 0.75
    logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]])  # arg max: 0, 1, 2, 0
    assert accuracy(logits, labels) == 0.75
    assert math.isnan(accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)))
    with pytest.raises(ValueError):
        accuracy(torch.tensor([0, 1]), labels)


def test_per_class_accuracy_matches_loop_and_marks_absent_classes():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (200,), generator=g)  # class 4 never occurs
    preds = torch.where(torch.rand(200, generator=g) < 0.7, labels, torch.randint(0, 5, (200,), generator=g))
    result = per_class_accuracy(preds, labels, num_classes=5)
    for c in range(4):
        hits = [int(p) == c for p, y in zip(preds, labels) if int(y) == c]
        assert result[c] == pytest.approx(sum(hits) / len(hits))
    assert math.isnan(result[4])
    with pytest.raises(ValueError):
        per_class_accuracy(preds, labels, num_classes=3)  # labels out of range


def test_confusion_matrix_orientation_and_loop_reference():
    cm = confusion_matrix(torch.tensor([1, 1, 0]), torch.tensor([0, 1, 1]), num_classes=3)
    assert cm.tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 0]]  # rows: true class, columns: predicted
    g = torch.Generator().manual_seed(1)
    preds, labels = torch.randint(0, 6, (300,), generator=g), torch.randint(0, 6, (300,), generator=g)
    expected = [[0] * 6 for _ in range(6)]
    for p, y in zip(preds.tolist(), labels.tolist()):
        expected[y][p] += 1
    assert confusion_matrix(preds, labels, 6).tolist() == expected
    assert confusion_matrix(torch.nn.functional.one_hot(preds, 6).float(), labels, 6).tolist() == expected  # logits


# --- MMD ------------------------------------------------------------------------------------

def test_mmd2_flattens_and_matches_loss():
    x, y = samples(40, 30, 16, shift=0.3)
    images_x, images_y = x.reshape(40, 1, 4, 4), y.reshape(30, 1, 4, 4)
    value = mmd2(images_x, images_y, block_size=16)
    assert isinstance(value, float)
    sigma2 = gaussian_bandwidths(median_sq_distance(x, y))
    assert value == pytest.approx(mmd2_unbiased(x, y, sigma2).item(), rel=1e-5)
    assert mmd2(x, y, seed=3) == mmd2(x, y, seed=3)


def test_mmd2_near_zero_for_same_distribution_and_positive_for_shift():
    x, y = samples(300, 300, 5)
    assert abs(mmd2(x, y)) < 0.01
    assert mmd2(x, y + 1.0) > 0.1
    assert mmd2(x.numpy(), (y + 1.0).numpy()) == pytest.approx(mmd2(x, y + 1.0))  # numpy input


def _reference_unbiased_mmd2_from_points(x: np.ndarray, y: np.ndarray, sigma2) -> float:
    m, n = len(x), len(y)
    total = 0.0
    for s2 in sigma2:
        k = lambda a, b: math.exp(-((a - b) ** 2).sum() / (2 * s2))  # noqa: E731
        total += (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
                  + sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
                  - 2 * sum(k(a, b) for a in x for b in y) / (m * n))
    return total / len(sigma2)


def test_permutation_test_statistic_matches_loop_reference():
    x, y = samples(12, 9, 3, shift=0.5, dtype=torch.float64)
    result = mmd_permutation_test(x, y, num_permutations=20)
    pooled = torch.cat([x, y]).numpy()
    med = np.median([((pooled[i] - pooled[j]) ** 2).sum() for i in range(21) for j in range(i + 1, 21)])
    sigma2 = [med * 2.0 ** e for e in (-2, -1, 0, 1, 2)]
    assert result.mmd2 == pytest.approx(_reference_unbiased_mmd2_from_points(x.numpy(), y.numpy(), sigma2), rel=1e-10)
    assert (result.n_x, result.n_y, result.num_permutations) == (12, 9, 20)


def test_statistics_for_many_splits_match_direct_computation():
    x, y = samples(8, 6, 2, dtype=torch.float64)
    z = torch.cat([x, y])
    kernel = torch.exp(-torch.cdist(z, z) ** 2 / 2.0)
    g = torch.Generator().manual_seed(0)
    splits = torch.zeros(14, 5, dtype=torch.float64)
    direct = []
    for column in range(5):
        chosen = torch.randperm(14, generator=g)[:8]
        splits[chosen, column] = 1.0
        rest = torch.tensor([i for i in range(14) if i not in set(chosen.tolist())])
        direct.append(mmd2_unbiased(z[chosen], z[rest], torch.tensor([1.0], dtype=torch.float64)).item())
    fast = metrics._mmd2_for_assignments(kernel, splits, 8, 6)
    assert fast.tolist() == pytest.approx(direct, rel=1e-10)


def test_permutation_test_p_values():
    x, y = samples(150, 120, 4)
    same = mmd_permutation_test(x, y, num_permutations=200, seed=0)
    shifted = mmd_permutation_test(x, y + 0.8, num_permutations=200, seed=0)
    assert isinstance(same, MMDTestResult)
    assert same.p_value > 0.2
    assert shifted.p_value < 0.05
    assert shifted.p_value == pytest.approx(1 / 201)  # no permutation comes close to a strong shift
    assert mmd_permutation_test(x, y, num_permutations=200, seed=0) == same  # deterministic


def test_permutation_test_rejection_rate_under_null_is_controlled():
    g = torch.Generator().manual_seed(5)
    p_values = [mmd_permutation_test(torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g),
                                     num_permutations=99, seed=i).p_value for i in range(40)]
    assert all(0 < p <= 1 for p in p_values)
    assert np.mean(np.array(p_values) <= 0.05) <= 0.15  # nominal 5 %; 6 of 40 would already be unlikely


def test_permutation_test_subsamples_deterministically():
    x, y = samples(500, 80, 3)
    a = mmd_permutation_test(x, y, num_permutations=10, max_points=50, seed=1)
    assert (a.n_x, a.n_y) == (50, 50)
    assert a == mmd_permutation_test(x, y, num_permutations=10, max_points=50, seed=1)
    assert a.mmd2 != mmd_permutation_test(x, y, num_permutations=10, max_points=50, seed=2).mmd2


# --- proxy A-distance ----------------------------------------------------------------------------

def test_pad_near_zero_for_same_distribution_and_two_for_separated():
    x, y = samples(600, 600, 8)
    same = proxy_a_distance(x, y)
    assert isinstance(same, PADResult)
    assert same.pad < 0.3 and same.domain_error > 0.42
    separated = proxy_a_distance(x, y + 4.0)
    assert separated.pad > 1.95 and separated.domain_accuracy > 0.99
    assert same.domain_accuracy == pytest.approx(1 - same.domain_error)
    assert proxy_a_distance(x, y, seed=0) == same  # deterministic


def test_pad_error_is_held_out_not_in_sample():
    """With more dimensions than training points the classifier fits its training half
    almost perfectly; only a held-out error keeps PAD near 0 for equal distributions."""
    x, y = samples(40, 40, 60, seed=3)
    assert proxy_a_distance(x, y, l2=0.01).pad < 1.0


def test_pad_formula_and_clipping(monkeypatch):
    # source at −5, target at +5 along feature 0; held-out error is exactly 0
    x = torch.zeros(40, 2)
    x[:, 0] = -5.0
    y = torch.zeros(60, 2)
    y[:, 0] = 5.0
    y[:, 1] = torch.linspace(0, 1, 60)
    assert proxy_a_distance(x, y) == PADResult(pad=2.0, domain_error=0.0, domain_accuracy=1.0)
    # a classifier that is always wrong (error 1) would give 2(1 − 2) = −2: clipped to 0
    monkeypatch.setattr(metrics, "_fit_logistic_regression",
                        lambda features, labels, l2: (torch.tensor([-1.0, 0.0]), torch.tensor(0.0)))
    assert proxy_a_distance(x, y) == PADResult(pad=0.0, domain_error=1.0, domain_accuracy=0.0)


def test_logistic_regression_matches_scipy_minimiser():
    """Same optimum as a float64 scipy L-BFGS-B run on the documented objective
    (scikit-learn's LogisticRegression(C=1/l2) objective)."""
    from scipy import optimize

    x, y = samples(300, 300, 6, shift=0.3, dtype=torch.float64)
    features = torch.cat([x, y])
    features = (features - features.mean(0)) / features.std(0)
    labels = torch.cat([torch.zeros(300), torch.ones(300)]).double()
    a, t, n, l2 = features.numpy(), labels.numpy(), 600, 2.0

    def objective(params):
        w, b = params[:-1], params[-1]
        z = a @ w + b
        loss = np.mean(np.logaddexp(0, z) - t * z) + 0.5 * l2 / n * w @ w
        r = (1 / (1 + np.exp(-z)) - t) / n
        return loss, np.append(a.T @ r + l2 / n * w, r.sum())

    reference = optimize.minimize(objective, np.zeros(7), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 1000}).x
    weights, bias = metrics._fit_logistic_regression(features, labels, l2=l2, tol=1e-8)
    np.testing.assert_allclose(weights.numpy(), reference[:-1], rtol=1e-4, atol=1e-6)
    assert bias.item() == pytest.approx(reference[-1], abs=1e-6)


def test_pad_balances_domains_and_validates():
    x, y = samples(1000, 100, 3)
    # 100 per domain, half held out: error is a multiple of 1/100
    result = proxy_a_distance(x, y, test_fraction=0.5)
    assert round(result.domain_error * 100, 9) == round(result.domain_error * 100)
    with pytest.raises(ValueError):
        proxy_a_distance(x, y, test_fraction=1.0)
    with pytest.raises(ValueError):
        proxy_a_distance(x[:1], y)


# --- CORAL distance and negative transfer ------------------------------------------------------------

def test_coral_distance_matches_numpy_and_is_zero_for_identical():
    x, y = samples(50, 40, 6, shift=0.2)
    y = y * 1.5
    d = 6
    cs, ct = np.cov(x.double().numpy(), rowvar=False), np.cov(y.double().numpy(), rowvar=False)
    assert coral_distance(x, y) == pytest.approx(((cs - ct) ** 2).sum() / (4 * d * d), rel=1e-10)
    assert coral_distance(x, x) == 0.0
    assert coral_distance(x.reshape(50, 2, 3), y.reshape(40, 2, 3)) == pytest.approx(coral_distance(x, y))


def test_negative_transfer_gap_sign():
    assert negative_transfer_gap(0.80, 0.90) == pytest.approx(0.10)  # source hurt: negative transfer
    assert negative_transfer_gap(0.95, 0.90) == pytest.approx(-0.05)  # source helped
    assert negative_transfer_gap(0.5, 0.5) == 0.0
