"""LogME against slow, plain evaluations of the evidence and its maximum."""
import math

import numpy as np
import pytest
from scipy import optimize, stats

from tlcore.transferability import log_evidence, logme_score, maximise_evidence


def plain_log_evidence(features, y, alpha, beta):
    """Bishop (2006) eq. 3.86 written out with dense linear algebra: no SVD, no shortcuts."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    residual = features @ m - y
    _, log_det_a = np.linalg.slogdet(a)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * residual @ residual - alpha / 2 * m @ m - log_det_a / 2)


def marginal_likelihood(features, y, alpha, beta):
    """The same evidence from its definition: y ~ N(0, I/β + F Fᵀ/α) once w ~ N(0, I/α) is integrated out."""
    n = len(y)
    covariance = np.eye(n) / beta + features @ features.T / alpha
    return stats.multivariate_normal(mean=np.zeros(n), cov=covariance).logpdf(y)


def plain_maximum(features, y):
    """Maximise the evidence over (log α, log β) with a general-purpose optimiser. The objective is
    the Gaussian marginal, which stays well conditioned for any β when N ≤ D (where the supremum
    lies at β → ∞ and the dense formula loses digits)."""
    def negative(log_params):
        return -marginal_likelihood(features, y, *np.exp(np.clip(log_params, -50, 50)))
    best = None
    for start in ([0.0, 0.0], [-3.0, 2.0], [3.0, -1.0]):
        found = optimize.minimize(negative, start, method="Nelder-Mead",
                                  options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000})
        best = found if best is None or found.fun < best.fun else best
    return -best.fun, np.exp(best.x)


def random_problem(n, d, seed, classes=3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, d))
    return centres[labels] + rng.normal(scale=1.5, size=(n, d)), labels


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30)])  # more rows than columns, and fewer
def test_evidence_matches_dense_formula_and_gaussian_marginal(n, d):
    features, labels = random_problem(n, d, seed=n + d)
    y = (labels == 1).astype(float)
    for alpha, beta in [(1.0, 1.0), (0.03, 7.0), (25.0, 0.2)]:
        ours = log_evidence(features, y, alpha, beta)
        assert ours == pytest.approx(plain_log_evidence(features, y, alpha, beta), rel=1e-10, abs=1e-9)
        assert ours == pytest.approx(marginal_likelihood(features, y, alpha, beta), rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("n,d", [(60, 4), (15, 40)])
def test_fixed_point_reaches_the_maximum_of_the_evidence(n, d):
    features, labels = random_problem(n, d, seed=7 * n + d)
    y = (labels == 0).astype(float)
    fit = maximise_evidence(features, y)
    assert fit.converged
    best, (alpha, beta) = plain_maximum(features, y)
    assert fit.log_evidence == pytest.approx(best, abs=1e-6)
    assert fit.alpha == pytest.approx(alpha, rel=1e-3)
    if n > d:  # an interior maximum; with n ≤ d the evidence is flat in β → ∞ near its supremum
        assert fit.beta == pytest.approx(beta, rel=1e-3)
    # ...and no point of a coarse grid does better.
    grid = np.exp(np.linspace(-8, 8, 41))
    grid_best = max(marginal_likelihood(features, y, a, b) for a in grid for b in grid)
    assert fit.log_evidence >= grid_best - 1e-9


def test_logme_is_the_mean_over_classes_of_the_maximum_evidence_per_example():
    features, labels = random_problem(45, 6, seed=3)
    expected = np.mean([plain_maximum(features, (labels == c).astype(float))[0] for c in range(3)]) / 45
    assert logme_score(features, labels) == pytest.approx(expected, abs=1e-7)


def test_features_that_separate_the_classes_score_higher_than_random_ones():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    informative = np.eye(4)[labels] * 3.0 + rng.normal(scale=0.5, size=(40, 4))
    informative = np.hstack([informative, rng.normal(size=(40, 12))])
    random_features = rng.normal(size=(40, 16))
    assert logme_score(informative, labels) > logme_score(random_features, labels) + 0.1
    # More noise on the same signal lowers the score.
    noisier = np.hstack([np.eye(4)[labels] * 3.0 + rng.normal(scale=2.0, size=(40, 4)), informative[:, 4:]])
    assert logme_score(informative, labels) > logme_score(noisier, labels)


def test_order_of_examples_and_class_names_do_not_matter():
    features, labels = random_problem(30, 8, seed=11)
    order = np.random.default_rng(1).permutation(30)
    score = logme_score(features, labels)
    assert logme_score(features[order], labels[order]) == pytest.approx(score, abs=1e-10)
    assert logme_score(features, labels + 10) == pytest.approx(score, abs=1e-10)
    assert math.isfinite(score)


@pytest.mark.parametrize("features,labels", [
    (np.zeros((5, 3)), np.zeros(4, dtype=int)),        # lengths differ
    (np.zeros((5, 3)), np.full(5, 0.5)),                # not class indices
    (np.zeros(5), np.zeros(5, dtype=int)),              # not a matrix
    (np.full((5, 3), np.nan), np.zeros(5, dtype=int)),  # not finite
])
def test_bad_input_is_refused(features, labels):
    with pytest.raises(ValueError):
        logme_score(features, labels)
