"""Evaluation metrics: accuracy, domain-gap measures and the negative-transfer gap.

Everything here runs without gradients and returns plain Python floats (or a
tensor for the confusion matrix, or a small frozen dataclass of floats).
Randomness (subsampling, permutations, splits) comes from an explicit seed.

References
----------
.. [Gretton2012] A. Gretton et al. "A Kernel Two-Sample Test". JMLR 13, 2012.
.. [Long2015] M. Long et al. "Learning Transferable Features with Deep Adaptation
   Networks". ICML 2015.
.. [BenDavid2007] S. Ben-David, J. Blitzer, K. Crammer, F. Pereira. "Analysis of
   Representations for Domain Adaptation". NeurIPS 2007.
.. [BenDavid2010] S. Ben-David et al. "A theory of learning from different
   domains". Machine Learning 79, 2010.
.. [Sun2016] B. Sun, K. Saenko. "Deep CORAL". ECCV Workshops 2016.
.. [Wang2019] Z. Wang, Z. Dai, B. Póczos, J. Carbonell. "Characterizing and
   Avoiding Negative Transfer". CVPR 2019.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import (coral_loss, gaussian_bandwidths, median_of_pairwise, median_sq_distance, mmd2_unbiased,
                     pairwise_sq_distances)

__all__ = [
    "accuracy",
    "per_class_accuracy",
    "confusion_matrix",
    "mmd2",
    "MMDTestResult",
    "mmd_permutation_test",
    "PADResult",
    "proxy_a_distance",
    "coral_distance",
    "negative_transfer_gap",
]


# --- helpers ---------------------------------------------------------------------------

def _as_matrix(values) -> Tensor:
    """Detached (N, D) floating tensor: inputs are flattened per row; float64 stays
    float64, everything else becomes float32."""
    values = torch.as_tensor(values).detach()
    if values.dim() == 0:
        raise ValueError("expected a batch of samples, got a scalar")
    values = values.reshape(len(values), -1)
    return values if values.dtype == torch.float64 else values.float()


def _as_matrices(x, y, name: str) -> tuple[Tensor, Tensor]:
    x, y = _as_matrix(x), _as_matrix(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{name}: the two samples have different sizes per row ({x.shape[1]} vs {y.shape[1]})")
    if x.dtype != y.dtype:
        x, y = x.double(), y.double()
    return x, y.to(x.device)


def _as_predictions(logits_or_preds) -> Tensor:
    """Class indices from predictions (N,) or logits (N, C) (arg max over classes)."""
    values = torch.as_tensor(logits_or_preds).detach()
    return values.argmax(1) if values.dim() == 2 else values.reshape(-1)


def _check_labels(preds: Tensor, labels: Tensor, num_classes: int | None = None) -> None:
    if preds.shape != labels.shape:
        raise ValueError(f"predictions and labels differ in length ({preds.numel()} vs {labels.numel()})")
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        for name, values in (("predictions", preds), ("labels", labels)):
            if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
                raise ValueError(f"{name} must lie in [0, {num_classes}), got range "
                                 f"[{int(values.min())}, {int(values.max())}]")


def _subsample(values: Tensor, max_points: int, generator: torch.Generator) -> Tensor:
    """At most ``max_points`` rows, drawn uniformly without replacement (order randomised)."""
    if len(values) <= max_points:
        return values
    keep = torch.randperm(len(values), generator=generator)[:max_points]
    return values[keep.to(values.device)]


# --- accuracy ----------------------------------------------------------------------------

def accuracy(logits_or_preds, labels) -> float:
    r"""Fraction of correct predictions, :math:`\frac{1}{N}\sum_i [\hat y_i = y_i]`.

    Parameters
    ----------
    logits_or_preds : Tensor, shape (N,) or (N, C)
        Predicted class indices, or logits / scores (arg max taken over dim 1).
    labels : Tensor, shape (N,)

    Returns
    -------
    float
        In [0, 1]; ``nan`` for an empty batch.
    """
    preds, labels = _as_predictions(logits_or_preds), torch.as_tensor(labels).reshape(-1)
    _check_labels(preds, labels.to(preds.device))
    if labels.numel() == 0:
        return math.nan
    return (preds == labels.to(preds.device)).sum().item() / labels.numel()


def per_class_accuracy(preds, labels, num_classes: int) -> list[float]:
    r"""Recall of each class, :math:`\mathrm{acc}_c = \#\{i: y_i = c, \hat y_i = c\} / \#\{i: y_i = c\}`.

    ``preds`` may also be logits (N, C). Classes absent from ``labels`` get ``nan``.
    """
    preds, labels = _as_predictions(preds), torch.as_tensor(labels).reshape(-1)
    labels = labels.to(preds.device)
    _check_labels(preds, labels, num_classes)
    totals = torch.bincount(labels, minlength=num_classes)
    correct = torch.bincount(labels[preds == labels], minlength=num_classes)
    return [c / t if t else math.nan for c, t in zip(correct.tolist(), totals.tolist())]


def confusion_matrix(preds, labels, num_classes: int) -> Tensor:
    r"""Counts :math:`M_{ij} = \#\{n: y_n = i, \hat y_n = j\}` (rows: true class, columns: predicted),
    as in ``sklearn.metrics.confusion_matrix``.

    ``preds`` may also be logits (N, C). Returns an int64 tensor (C, C).
    """
    preds, labels = _as_predictions(preds), torch.as_tensor(labels).reshape(-1)
    labels = labels.to(preds.device)
    _check_labels(preds, labels, num_classes)
    flat = torch.bincount(labels.long() * num_classes + preds.long(), minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


# --- MMD ---------------------------------------------------------------------------------

def mmd2(x, y, num_kernels: int = 5, block_size: int = 2048,
         generator: torch.Generator | None = None, seed: int = 0) -> float:
    r"""Unbiased multi-kernel MMD² between two samples ([Gretton2012]_, [Long2015]_).

    Inputs of any shape are flattened to (N, D) (input space for images,
    feature space for features) and passed to :func:`tlcore.losses.mmd2_unbiased`
    under ``no_grad``:

    .. math:: \frac{1}{K}\sum_k \widehat{\mathrm{MMD}}^2_u(k_k), \qquad
              \sigma_k^2 = \mathrm{med} \cdot 2^{\,k - \lfloor K/2 \rfloor}

    with ``med`` the median pairwise squared distance of (up to 1024 points of)
    the pooled sample. Memory stays at one ``block_size²`` block whatever N.

    Parameters
    ----------
    x, y : array-like, shape (m, ...) and (n, ...)
        At least 2 samples each.
    num_kernels : int
    block_size : int
    generator : torch.Generator, optional
        Draws the subset for the median heuristic; overrides ``seed``.
    seed : int
        Seed for that subset when no generator is given.
    """
    x, y = _as_matrices(x, y, "mmd2")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sigma2 = gaussian_bandwidths(median_sq_distance(x, y, generator=generator), num_kernels)
        return mmd2_unbiased(x, y, sigma2, block_size=block_size).item()


@dataclass(frozen=True)
class MMDTestResult:
    """Outcome of :func:`mmd_permutation_test`.

    ``mmd2`` is the observed unbiased MMD² on the (sub)samples; ``n_x``, ``n_y``
    are the numbers of points actually used.
    """
    mmd2: float
    p_value: float
    num_permutations: int
    n_x: int
    n_y: int


def _mmd2_for_assignments(kernel: Tensor, in_x: Tensor, m: int, n: int) -> Tensor:
    """Unbiased MMD² for many splits of the pooled sample at once.

    ``kernel`` is the pooled (m+n)² kernel matrix and ``in_x`` an (m+n, P) 0/1
    matrix whose columns mark which points form the first sample. With ``s`` a
    column, ``d`` the diagonal and ``1`` the all-ones vector::

        S_xx = sᵀKs − dᵀs,   S_xy = 1ᵀKs − sᵀKs,   S_yy = 1ᵀK1 − 2·1ᵀKs + sᵀKs − dᵀ(1 − s)
    """
    diagonal, row_sums = kernel.diagonal(), kernel.sum(1)
    k_s = kernel @ in_x
    s_k_s = (in_x * k_s).sum(0)
    one_k_s = row_sums @ in_x
    diag_s = diagonal @ in_x
    sum_xx = s_k_s - diag_s
    sum_xy = one_k_s - s_k_s
    sum_yy = row_sums.sum() - 2.0 * one_k_s + s_k_s - (diagonal.sum() - diag_s)
    return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * sum_xy / (m * n)


def mmd_permutation_test(x, y, num_permutations: int = 200, max_points: int = 1000, seed: int = 0,
                         num_kernels: int = 5) -> MMDTestResult:
    r"""Permutation two-sample test with the multi-kernel MMD² statistic ([Gretton2012]_ §5).

    Procedure:

    1. Subsampling: each sample larger than ``max_points`` is replaced by
       ``max_points`` of its points drawn uniformly without replacement from a
       generator seeded with ``seed`` (same seed, same subsets, same p-value).
    2. Bandwidths :math:`\sigma_k^2 = \mathrm{med} \cdot 2^{k - \lfloor K/2 \rfloor}`,
       ``med`` the median squared distance over all pairs of the pooled subsample.
    3. The pooled kernel matrix :math:`K = \frac1K \sum_k k_k(z_i, z_j)` is built
       once (float64); each permutation relabels the pooled points and re-reads
       the statistic from ``K``, in batches of matrix products.
    4. :math:`p = \frac{1 + \#\{b : \widehat{\mathrm{MMD}}^2_b \ge \widehat{\mathrm{MMD}}^2_{obs}\}}{1 + B}`
       (``B = num_permutations``). A permuted statistic within 1e-12 (relative)
       of the observed one counts as a tie (≥), so rounding can only make the
       p-value larger (conservative), never smaller.

    Memory: O((m+n)²) for ``K``, so ``max_points`` bounds it: with 1000, ``K``
    is a 2000² float64 matrix (32 MB; about three such while it is built).

    Returns
    -------
    MMDTestResult
    """
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be at least 1, got {num_permutations}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    x, y = _as_matrices(x, y, "mmd_permutation_test")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd_permutation_test needs at least 2 samples each, got {len(x)} and {len(y)}")
    generator = torch.Generator().manual_seed(seed)
    x, y = _subsample(x, max_points, generator), _subsample(y, max_points, generator)
    m, n = len(x), len(y)

    with torch.no_grad():
        sq_dists = pairwise_sq_distances(torch.cat([x, y]).double())
        sigma2 = gaussian_bandwidths(median_of_pairwise(sq_dists), num_kernels)
        kernel = torch.zeros_like(sq_dists)
        for s2 in sigma2:
            kernel += torch.exp(sq_dists / (-2.0 * s2))
        kernel /= len(sigma2)
        del sq_dists

        observed_split = torch.zeros(m + n, 1, dtype=kernel.dtype, device=kernel.device)
        observed_split[:m] = 1.0
        observed = _mmd2_for_assignments(kernel, observed_split, m, n).item()
        threshold = observed - 1e-12 * max(1.0, abs(observed))

        at_least_as_large, batch = 0, 256
        for start in range(0, num_permutations, batch):
            count = min(batch, num_permutations - start)
            splits = torch.zeros(m + n, count, dtype=kernel.dtype)
            for column in range(count):
                splits[torch.randperm(m + n, generator=generator)[:m], column] = 1.0
            stats = _mmd2_for_assignments(kernel, splits.to(kernel.device), m, n)
            at_least_as_large += int((stats >= threshold).sum())
    p_value = (1 + at_least_as_large) / (1 + num_permutations)
    return MMDTestResult(mmd2=observed, p_value=p_value, num_permutations=num_permutations, n_x=m, n_y=n)


# --- proxy A-distance -------------------------------------------------------------------

@dataclass(frozen=True)
class PADResult:
    """Outcome of :func:`proxy_a_distance`: ``pad = max(0, 2(1 − 2·domain_error))``
    and ``domain_accuracy = 1 − domain_error``, measured on the held-out split."""
    pad: float
    domain_error: float
    domain_accuracy: float


def _fit_logistic_regression(features: Tensor, labels: Tensor, l2: float,
                             max_iter: int = 100, tol: float = 1e-4, history: int = 10) -> tuple[Tensor, Tensor]:
    r"""L2-regularised logistic regression by full-batch L-BFGS; returns (weights, bias).

    Minimises :math:`\frac1n \sum_i \log(1 + e^{z_i}) - y_i z_i + \frac{l2}{2n}\lVert w \rVert^2`,
    :math:`z = Xw + b` (bias not penalised), i.e. scikit-learn's
    ``LogisticRegression(C=1/l2)``; stops when the largest gradient entry is at
    most ``tol``, as scikit-learn's lbfgs solver does. Gradients are written out
    (two matrix-vector products per evaluation, no autograd), and the L-BFGS
    two-loop recursion with a backtracking (Armijo) line search is written here
    because creating a ``torch.optim`` optimizer first imports torch._dynamo
    (seconds on a cold start).
    """
    n, d = features.shape

    def loss_and_gradient(params: Tensor) -> tuple[float, Tensor]:
        weights, bias = params[:d], params[d]
        logits = torch.addmv(bias.expand(n), features, weights)
        loss = (F.softplus(logits) - labels * logits).mean() + 0.5 * l2 / n * weights.dot(weights)
        residual = (torch.sigmoid(logits) - labels) / n
        gradient = torch.cat([features.T @ residual + (l2 / n) * weights, residual.sum().reshape(1)])
        return loss.item(), gradient

    params = torch.zeros(d + 1, dtype=features.dtype, device=features.device)
    loss, gradient = loss_and_gradient(params)
    pairs: list[tuple[Tensor, Tensor, float]] = []  # (s, y, 1 / yᵀs) of the latest steps
    for _ in range(max_iter):
        if gradient.abs().max().item() <= tol:
            break
        # Two-loop recursion: direction = −H·gradient with H the L-BFGS inverse-Hessian estimate.
        q, alphas = gradient.clone(), []
        for s, y, rho in reversed(pairs):
            alpha = rho * s.dot(q).item()
            q -= alpha * y
            alphas.append(alpha)
        if pairs:
            s, y, _ = pairs[-1]
            q *= s.dot(y).item() / y.dot(y).item()
        for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
            q += (alpha - rho * y.dot(q).item()) * s
        direction = -q
        slope = gradient.dot(direction).item()
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            pairs.clear()
            direction, slope = -gradient, -gradient.dot(gradient).item()

        step = 1.0
        while True:
            candidate = params + step * direction
            new_loss, new_gradient = loss_and_gradient(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = candidate - params, new_gradient - gradient
        curvature = s.dot(y).item()
        if curvature > 1e-12:
            pairs = (pairs + [(s, y, 1.0 / curvature)])[-history:]
        converged = loss - new_loss <= 1e-12 * max(1.0, abs(loss))
        params, loss, gradient = candidate, new_loss, new_gradient
        if converged:
            break
    return params[:d], params[d]


def proxy_a_distance(source_feats, target_feats, seed: int = 0, test_fraction: float = 0.5,
                     max_points: int = 10_000, l2: float = 1.0) -> PADResult:
    r"""Proxy A-distance ([BenDavid2007]_, [BenDavid2010]_): how well a linear classifier
    tells the two domains apart.

    .. math:: \hat d_{\mathcal A} = 2\,(1 - 2\epsilon)

    with :math:`\epsilon` the held-out error of a domain classifier. Chance
    (``ε = 0.5``) gives 0, perfect separation gives 2. A classifier worse than
    chance (``ε > 0.5``, only by noise) would give a negative value; it is
    clipped at 0.

    Procedure: flatten to (N, D); subsample both domains to the same size
    ``min(n_s, n_t, max_points)`` (equal class priors make 0.5 the chance
    error); split each domain with ``test_fraction`` held out (stratified);
    standardise with the training split's mean and standard deviation; fit an
    L2-regularised logistic regression (``C = 1/l2`` in scikit-learn terms;
    full-batch L-BFGS in torch, no autograd); ε is its error on the held-out
    split. All draws come from ``seed``. A linear classifier is used because
    an SVC sweep was measured over 170× slower for the same answer; on 10k vs
    10k 256-d features this takes a small fraction of :func:`mmd2`'s time
    (benchmarks/bench_metrics.py).

    Parameters
    ----------
    source_feats, target_feats : array-like, shape (n_s, ...) and (n_t, ...)
    seed : int
        Seeds the subsets and the split.
    test_fraction : float
        Held-out share of each domain, in (0, 1).
    max_points : int
        Most points used per domain.
    l2 : float
        L2 penalty on the weights (``C = 1/l2``).

    Returns
    -------
    PADResult
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if l2 <= 0:
        raise ValueError(f"l2 must be positive, got {l2}")
    source, target = _as_matrices(source_feats, target_feats, "proxy_a_distance")
    per_domain = min(len(source), len(target), max_points)
    if per_domain < 2:
        raise ValueError(f"proxy_a_distance needs at least 2 samples per domain, got {len(source)} and {len(target)}")
    num_test = min(max(round(test_fraction * per_domain), 1), per_domain - 1)

    # A random subset in random order per domain: its first num_test rows are held out.
    generator = torch.Generator().manual_seed(seed)
    source = source[torch.randperm(len(source), generator=generator)[:per_domain].to(source.device)]
    target = target[torch.randperm(len(target), generator=generator)[:per_domain].to(target.device)]
    train = torch.cat([source[num_test:], target[num_test:]])
    test = torch.cat([source[:num_test], target[:num_test]])
    num_train = per_domain - num_test
    train_labels = torch.cat([torch.zeros(num_train), torch.ones(num_train)]).to(train)
    test_labels = torch.cat([torch.zeros(num_test), torch.ones(num_test)]).to(test)

    with torch.no_grad():
        # Column reductions via matrix-vector products: much faster than .mean(0)/.std(0) on CPU.
        ones = torch.ones(len(train), dtype=train.dtype, device=train.device)
        mean = ones @ train / len(train)
        centred = train - mean
        std = (ones @ (centred * centred) / (len(train) - 1)).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))  # constant features stay 0 after centring
        weights, bias = _fit_logistic_regression(centred / std, train_labels, l2)
        test_logits = ((test - mean) / std) @ weights + bias
        error = ((test_logits > 0).to(test_labels.dtype) != test_labels).sum().item() / len(test_labels)
    return PADResult(pad=max(0.0, 2.0 * (1.0 - 2.0 * error)), domain_error=error, domain_accuracy=1.0 - error)


# --- CORAL and negative transfer ----------------------------------------------------------

def coral_distance(x, y) -> float:
    r"""CORAL distance [Sun2016]_ in float64, no gradient:
    :math:`\frac{1}{4d^2} \lVert C_x - C_y \rVert_F^2` with unbiased covariances
    (inputs flattened to (N, d); see :func:`tlcore.losses.coral_loss`)."""
    x, y = _as_matrices(x, y, "coral_distance")
    with torch.no_grad():
        return coral_loss(x.double(), y.double()).item()


def negative_transfer_gap(target_acc_with_source: float, target_acc_target_only: float) -> float:
    r"""Negative transfer gap [Wang2019]_.

    .. math:: \mathrm{NTG} = \epsilon_T(A(S, T)) - \epsilon_T(A(\emptyset, T))
              = \mathrm{acc}_T(A(\emptyset, T)) - \mathrm{acc}_T(A(S, T))

    the target error of the algorithm trained with the source minus its error
    trained on the same labelled target data alone. Positive means negative
    transfer (the source hurt). Accuracies in [0, 1] give a gap in [−1, 1].
    """
    return float(target_acc_target_only) - float(target_acc_with_source)
