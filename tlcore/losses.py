"""Differentiable domain-adaptation losses: multi-kernel MMD², CORAL, gradient reversal, the DANN
domain-adversarial loss, and the relational / optimal-transport losses (DeepJDOT, RKD) in their
own section at the end.

All functions are pure tensor functions of ``(N, D)`` feature batches. They run
in float32 (float64 when an input is float64) even under autocast, because the
kernel sums cancel to small differences that half precision cannot resolve.

References
----------
.. [Gretton2012] A. Gretton, K. Borgwardt, M. Rasch, B. Schölkopf, A. Smola.
   "A Kernel Two-Sample Test". JMLR 13, 2012.
.. [Long2015] M. Long, Y. Cao, J. Wang, M. Jordan. "Learning Transferable Features
   with Deep Adaptation Networks" (DAN). ICML 2015.
.. [Sun2016] B. Sun, K. Saenko. "Deep CORAL: Correlation Alignment for Deep Domain
   Adaptation". ECCV Workshops 2016.
.. [Ganin2015] Y. Ganin, V. Lempitsky. "Unsupervised Domain Adaptation by
   Backpropagation". ICML 2015.
.. [Ganin2016] Y. Ganin et al. "Domain-Adversarial Training of Neural Networks".
   JMLR 17, 2016.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

__all__ = [
    "median_sq_distance",
    "median_of_pairwise",
    "pairwise_sq_distances",
    "gaussian_bandwidths",
    "mmd2_unbiased",
    "coral_loss",
    "GradientReversal",
    "grad_reverse",
    "GradientReversalLayer",
    "dann_lambda",
    "jdot_cost",
    "ot_plan",
    "jdot_loss",
    "rkd_distance_loss",
    "rkd_angle_loss",
    "prediction_entropy",
    "mcc_loss",
    "pseudo_label_loss",
    "curriculum_thresholds",
    "class_balanced_selection",
    "multilinear_map",
    "randomized_multilinear_map",
    "entropy_certainty_weights",
]

#: Stands for −∞ on the diagonal of within-sample blocks: exp() of it is exactly 0
#: in float32 and float64, and unlike −inf it keeps bandwidth gradients finite
#: (0 · −inf would be NaN).
_EXCLUDED_EXPONENT = -1.0e4

#: Floor for the median squared distance, so that a sample of identical points
#: still gets finite, positive bandwidths.
MEDIAN_EPS = 1e-12


# --- helpers -----------------------------------------------------------------------

def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precision is upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _no_autocast(device: torch.device):
    """Autocast would run the distance matmuls in half precision; switch it off here."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _check_pair(x: Tensor, y: Tensor, min_rows: int, name: str) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"{name} expects 2-D (N, D) inputs, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{name}: feature dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    if len(x) < min_rows or len(y) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows per input, got {len(x)} and {len(y)}")


def _median(values: Tensor) -> Tensor:
    """Median of a 1-D tensor, averaging the two middle values for an even count (as numpy)."""
    n = values.numel()
    upper = torch.kthvalue(values, n // 2 + 1).values
    if n % 2:
        return upper
    # The lower middle value is ``upper`` itself when it is repeated below; otherwise the
    # largest value under it (one comparison pass instead of a second selection).
    below = values[values < upper]
    lower = below.max() if len(below) == n // 2 else upper
    return 0.5 * (upper + lower)


def pairwise_sq_distances(z: Tensor) -> Tensor:
    """All squared Euclidean distances within ``z`` (N, D) as an (N, N) matrix in ``z``'s dtype,
    by ``||a||² + ||b||² − 2a·b`` after centring (less cancellation), clamped at 0."""
    z = z - z.mean(0)
    sq_norms = (z * z).sum(1)
    return (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (z @ z.T)).clamp_min_(0.0)


def median_of_pairwise(sq_dists: Tensor) -> Tensor:
    """Median of the strictly-upper-triangular entries (distinct pairs) of a square distance matrix."""
    rows, cols = torch.triu_indices(len(sq_dists), len(sq_dists), offset=1, device=sq_dists.device)
    return _median(sq_dists[rows, cols])


# --- median heuristic and bandwidths --------------------------------------------------

def median_sq_distance(x: Tensor, y: Tensor, max_points: int = 1024,
                       generator: torch.Generator | None = None) -> Tensor:
    r"""Median of the pairwise squared Euclidean distances of the pooled sample.

    .. math:: \operatorname{median}_{i<j} \lVert z_i - z_j \rVert^2, \quad z = x \cup y

    This is the median heuristic for Gaussian kernel bandwidths [Gretton2012]_.
    The result is detached: bandwidths are not trained.

    Parameters
    ----------
    x, y : Tensor, shape (m, D) and (n, D)
        The two samples; they are pooled.
    max_points : int
        When ``m + n > max_points`` a uniformly random subset of ``max_points``
        pooled points is used (O(max_points²) memory and time). Distances are
        computed in the compute dtype after centring.
    generator : torch.Generator, optional
        Draws that subset. ``None`` uses a fresh generator seeded with 0, so the
        result is deterministic.

    Returns
    -------
    Tensor
        0-d tensor in the compute dtype (float32, or float64 for float64 input)
        on ``x``'s device. The median of an even number of distances is the
        mean of the two middle ones, as in ``numpy.median``.
    """
    _check_pair(x, y, 1, "median_sq_distance")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    dtype = _compute_dtype(x, y)
    with torch.no_grad(), _no_autocast(x.device):
        m, n = len(x), len(y)
        if m + n > max_points:
            if generator is None:
                generator = torch.Generator().manual_seed(0)
            # Indices into the pooled sample x ∪ y; gather from each side without
            # materialising the whole pooled copy.
            keep = torch.randperm(m + n, generator=generator, device=generator.device)[:max_points].to(x.device)
            x, y = x[keep[keep < m]], y[keep[keep >= m] - m]
        pooled = torch.cat([x.detach().to(dtype), y.detach().to(dtype)])
        return median_of_pairwise(pairwise_sq_distances(pooled))


def gaussian_bandwidths(median_sq: Tensor | float, num_kernels: int = 5, multiplier: float = 2.0) -> Tensor:
    r"""Squared bandwidths spread geometrically around the median heuristic (DAN [Long2015]_).

    .. math:: \sigma_i^2 = \max(\mathrm{med}, \epsilon) \cdot
              \mathrm{multiplier}^{\,i - \lfloor K/2 \rfloor}, \quad i = 0, \dots, K-1

    With the defaults: ``med × [1/4, 1/2, 1, 2, 4]``. ``ε = 1e-12`` keeps the
    bandwidths positive when at least half the pairs are identical points
    (median 0).

    Parameters
    ----------
    median_sq : Tensor or float
        Median squared distance, e.g. from :func:`median_sq_distance`.
    num_kernels : int
        ``K``, at least 1.
    multiplier : float
        Ratio between neighbouring squared bandwidths, > 0. Ratio 2 lets
        :func:`mmd2_unbiased` derive each kernel from the next wider one by
        squaring instead of a new ``exp``.

    Returns
    -------
    Tensor, shape (K,)
        Ascending squared bandwidths, dtype and device of ``median_sq``
        (floating default dtype for a Python number).
    """
    if num_kernels < 1:
        raise ValueError(f"num_kernels must be at least 1, got {num_kernels}")
    if not multiplier > 0:
        raise ValueError(f"multiplier must be positive, got {multiplier}")
    median_sq = torch.as_tensor(median_sq)
    if not median_sq.is_floating_point():
        median_sq = median_sq.to(torch.get_default_dtype())
    exponents = torch.arange(num_kernels, dtype=median_sq.dtype, device=median_sq.device) - num_kernels // 2
    return median_sq.detach().clamp_min(MEDIAN_EPS) * multiplier ** exponents


# --- multi-kernel MMD² ------------------------------------------------------------------

def _augment(points: Tensor, exponent_scale: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ``l_i`` and ``r_j`` such that ``l_i · r_j = exponent_scale · ||p_i − p_j||²``.

    ``l = [p, ||p||², 1]`` and ``r = scale · [−2p, 1, ||p||²]``: one matmul then gives
    the whole ``exp`` argument of a block, with no broadcast adds and no extra pass.
    """
    sq_norms = torch.linalg.vector_norm(points, dim=1, keepdim=True).square()  # no (N, D) temporary
    lhs = torch.cat([points, sq_norms, torch.ones_like(sq_norms)], dim=1)
    rhs = torch.cat([points * (-2.0 * exponent_scale), exponent_scale.expand_as(sq_norms),
                     sq_norms * exponent_scale], dim=1)
    return lhs, rhs


def _block_kernel_sums(exponent: Tensor, kernel_ratios: Tensor | None, num_kernels: int,
                       mask_diagonal: bool, inplace: bool) -> Tensor:
    """Per-kernel sums of one block, float64, shape (K,).

    ``exponent = −d² / (2 σ²_max)`` for the widest kernel. With ``kernel_ratios``
    None the bandwidths halve from kernel to kernel, so each kernel is the square
    of the previous one (exp(−a)² = exp(−2a)); otherwise kernel k is
    ``exp(exponent · kernel_ratios[k])``.

    Rounding can leave a tiny positive exponent where d² ≈ 0 (duplicate points);
    it is not clamped: exp gives 1 + O(ε) there, and a clamp costs a full pass
    over the block (measured ~10 % of the whole MMD on CPU).
    """
    if mask_diagonal:
        if inplace:
            exponent.diagonal().fill_(_EXCLUDED_EXPONENT)  # exp() = 0 drops the i == j terms
        else:
            eye = torch.eye(len(exponent), dtype=torch.bool, device=exponent.device)
            exponent = exponent.masked_fill(eye, _EXCLUDED_EXPONENT)

    # Block sums as matrix-vector products with a ones vector: on CPU this measured
    # ~10x faster than Tensor.sum() and more accurate (float32 partial sums over one
    # row, then float64 over rows).
    ones = exponent.new_ones(exponent.shape[1])
    row_sums = []
    if kernel_ratios is None:
        kernel = exponent.exp_() if inplace else exponent.exp()
        row_sums.append(torch.mv(kernel, ones))
        for _ in range(num_kernels - 1):
            kernel = kernel.mul_(kernel) if inplace else kernel * kernel
            row_sums.append(torch.mv(kernel, ones))
    else:
        for ratio in kernel_ratios:
            row_sums.append(torch.mv(torch.exp(exponent * ratio), ones))
    return torch.stack(row_sums).double().sum(1)


def _pair_sums(lhs: Tensor, rhs: Tensor, symmetric: bool, block_size: int,
               kernel_ratios: Tensor | None, num_kernels: int, inplace: bool) -> Tensor:
    """Σ_{i,j} k(a_i, b_j) per kernel over all pairs (i ≠ j when ``symmetric``), in blocks.

    For a symmetric (within-sample) sum only blocks on and above the diagonal are
    computed; off-diagonal blocks count twice.
    """
    total = torch.zeros(num_kernels, dtype=torch.float64, device=lhs.device)
    buffer = lhs.new_empty(min(block_size, len(lhs)) * min(block_size, len(rhs))) if inplace else None
    for i0 in range(0, len(lhs), block_size):
        rows = lhs[i0:i0 + block_size]
        for j0 in range(i0 if symmetric else 0, len(rhs), block_size):
            cols = rhs[j0:j0 + block_size]
            if inplace:
                exponent = torch.mm(rows, cols.T, out=buffer[:len(rows) * len(cols)].view(len(rows), len(cols)))
            else:
                exponent = rows @ cols.T
            on_diagonal = symmetric and i0 == j0
            sums = _block_kernel_sums(exponent, kernel_ratios, num_kernels, on_diagonal, inplace)
            total = total + (sums if on_diagonal or not symmetric else 2.0 * sums)
    return total


def mmd2_unbiased(x: Tensor, y: Tensor, sigma2: Tensor | None = None, block_size: int = 2048) -> Tensor:
    r"""Unbiased multi-kernel MMD² U-statistic ([Gretton2012]_ eq. 3; DAN [Long2015]_).

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{K} \sum_{k=1}^{K} \Big[
          \frac{1}{m(m-1)} \sum_{i \ne j} k_k(x_i, x_j)
        + \frac{1}{n(n-1)} \sum_{i \ne j} k_k(y_i, y_j)
        - \frac{2}{mn} \sum_{i, j} k_k(x_i, y_j) \Big],
        \qquad k_k(a, b) = \exp\!\Big(-\frac{\lVert a - b \rVert^2}{2 \sigma_k^2}\Big)

    The kernels are averaged (not summed), so the value stays in the range of a
    single Gaussian kernel's MMD² whatever ``K``. Being unbiased, the estimate
    can be slightly negative when the distributions are equal.

    Computation: squared distances come from one matmul of augmented rows
    (``||a||² + ||b||² − 2a·b``, after centring the pooled sample) over
    ``block_size × block_size`` blocks; the within-sample sums use only blocks
    on and above the diagonal, doubling the off-diagonal ones; when the
    bandwidths are a geometric sequence with ratio 2 (the default bandwidths)
    one ``exp`` serves all kernels by repeated squaring; block sums are
    matrix-vector products with a ones vector. Blocks run in float32 (float64
    for float64 input); their sums are accumulated in float64.

    Memory: without autograd one ``block_size²`` buffer is reused for every
    block (two more transient ones per kernel when the bandwidths are not a
    ratio-2 sequence), plus O((m + n)·D) for the augmented rows; never an
    (m+n)² matrix. With autograd each block's intermediates are kept for
    backward, so use it on training batches (one block for ``N ≤ block_size``).

    Parameters
    ----------
    x, y : Tensor, shape (m, D) and (n, D)
        The two samples, ``m, n ≥ 2``.
    sigma2 : Tensor, shape (K,), optional
        Squared bandwidths σ²_k. Default: :func:`gaussian_bandwidths` of
        :func:`median_sq_distance` (5 kernels).
    block_size : int
        Rows per block.

    Returns
    -------
    Tensor
        0-d tensor in the compute dtype, differentiable w.r.t. ``x``, ``y``
        (and ``sigma2`` if it requires grad).

    Examples
    --------
    >>> x, y = torch.randn(100, 8), torch.randn(120, 8) + 1.0
    >>> float(mmd2_unbiased(x, y)) > 0.05
    True
    """
    _check_pair(x, y, 2, "mmd2_unbiased")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    dtype = _compute_dtype(x, y)
    with _no_autocast(x.device):
        x, y = x.to(dtype), y.to(dtype)
        if sigma2 is None:
            sigma2 = gaussian_bandwidths(median_sq_distance(x, y))
        sigma2 = torch.as_tensor(sigma2, dtype=dtype, device=x.device).reshape(-1)
        if len(sigma2) == 0 or not bool((sigma2 > 0).all()):
            raise ValueError("sigma2 must hold at least one positive squared bandwidth")

        widest = sigma2.max()
        descending = torch.sort(sigma2.detach(), descending=True).values
        # With trainable bandwidths every kernel needs its own exp for its own gradient.
        halving = (len(sigma2) > 1 and not sigma2.requires_grad
                   and torch.allclose(descending[:-1] / descending[1:], torch.full_like(descending[1:], 2.0)))
        kernel_ratios = None if halving or len(sigma2) == 1 else widest / sigma2

        # Distances are translation invariant; centring shrinks the norms and so the
        # cancellation in ||a||² + ||b||² − 2a·b.
        centre = (x.detach().sum(0) + y.detach().sum(0)) / (len(x) + len(y))
        exponent_scale = -0.5 / widest
        x_lhs, x_rhs = _augment(x - centre, exponent_scale)
        y_lhs, y_rhs = _augment(y - centre, exponent_scale)

        inplace = not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad or sigma2.requires_grad))
        sums = {name: _pair_sums(lhs, rhs, symmetric, block_size, kernel_ratios, len(sigma2), inplace)
                for name, lhs, rhs, symmetric in [("xx", x_lhs, x_rhs, True), ("yy", y_lhs, y_rhs, True),
                                                   ("xy", x_lhs, y_rhs, False)]}
        m, n = len(x), len(y)
        per_kernel = sums["xx"] / (m * (m - 1)) + sums["yy"] / (n * (n - 1)) - 2.0 * sums["xy"] / (m * n)
        return per_kernel.mean().to(dtype)


# --- CORAL ----------------------------------------------------------------------------

def _covariance(features: Tensor) -> Tensor:
    centred = features - features.mean(0, keepdim=True)
    return centred.T @ centred / (len(features) - 1)


def coral_loss(source: Tensor, target: Tensor) -> Tensor:
    r"""Deep CORAL loss [Sun2016]_: squared Frobenius distance of the feature covariances.

    .. math:: \ell_{\mathrm{CORAL}} = \frac{1}{4 d^2} \lVert C_S - C_T \rVert_F^2,
              \qquad C = \frac{1}{n-1} (X - \bar X)^\top (X - \bar X)

    Parameters
    ----------
    source, target : Tensor, shape (n_s, d) and (n_t, d)
        Feature batches, at least 2 rows each (the covariance is unbiased).

    Returns
    -------
    Tensor
        0-d, differentiable, in the compute dtype (float32 or float64).
    """
    _check_pair(source, target, 2, "coral_loss")
    dtype = _compute_dtype(source, target)
    with _no_autocast(source.device):
        difference = _covariance(source.to(dtype)) - _covariance(target.to(dtype))
        d = source.shape[1]
        return (difference * difference).sum() / (4.0 * d * d)


# --- gradient reversal ------------------------------------------------------------------

class GradientReversal(torch.autograd.Function):
    r"""Identity forward, ``−coeff · grad`` backward [Ganin2015]_.

    .. math:: R(x) = x, \qquad \frac{\partial R}{\partial x} = -\lambda I

    Use :func:`grad_reverse` rather than calling ``apply`` directly.
    """

    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)  # a view, so autograd records this node

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        return -ctx.coeff * grad_output, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Gradient reversal: returns ``x``; in backward multiplies the gradient by ``−coeff``.

    See :class:`GradientReversal`. ``coeff`` is a plain number (not trained).
    """
    return GradientReversal.apply(x, float(coeff))


class GradientReversalLayer(nn.Module):
    """Module form of :func:`grad_reverse`; set ``layer.coeff`` to follow a schedule
    such as :func:`dann_lambda`."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    r"""DANN ramp for the gradient-reversal coefficient [Ganin2016]_ (section 5.2.2).

    .. math:: \lambda_p = \frac{2}{1 + \exp(-\gamma p)} - 1

    Rises from 0 at ``p = 0`` to ``≈ 0.9999`` at ``p = 1`` for ``γ = 10``,
    damping the noisy discriminator signal early in training.

    Parameters
    ----------
    progress : float
        Training progress ``p`` in [0, 1]; outside raises ``ValueError``.
    gamma : float
        Steepness ``γ ≥ 0``.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress}")
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_adversarial_loss(source_logits: Tensor, target_logits: Tensor, source_weight: Tensor | None = None,
                            target_weight: Tensor | None = None) -> Tensor:
    r"""The domain discriminator's loss in DANN [Ganin2016]_ (eq. 9–10): binary cross-entropy of
    telling source (label 0) from target (label 1), averaged over both batches together.

    .. math::

        L_d = \frac{1}{n_s + n_t} \Big[ \sum_{i=1}^{n_s} w^s_i \, \ell\big(d^s_i, 0\big)
              + \sum_{j=1}^{n_t} w^t_j \, \ell\big(d^t_j, 1\big) \Big],
        \qquad \ell(d, y) = -y \log \sigma(d) - (1 - y) \log\big(1 - \sigma(d)\big)

    where :math:`d = D(R_\lambda(f))` are the discriminator's logits on gradient-reversed
    features (:class:`DomainAdversarialLoss` applies :math:`R_\lambda` and :math:`D`; this
    function is the pure part on logits). The discriminator minimises :math:`L_d`; through the
    reversal the features maximise it, i.e. become indistinguishable across domains. Weights
    default to 1 (the plain DANN loss); per-sample weights (TLlib's ``w_s``/``w_t``) let
    conditional variants such as CDAN+E weight examples by prediction certainty.

    Parameters
    ----------
    source_logits, target_logits : Tensor
        ``(n_s,)`` and ``(n_t,)`` (or ``(n, 1)``) discriminator logits.
    source_weight, target_weight : Tensor, optional
        Non-negative per-sample weights, ``(n_s,)`` and ``(n_t,)``.

    Returns
    -------
    Tensor
        A scalar, computed in float32 (float64 if a logit is float64).

    Examples
    --------
    >>> import torch
    >>> zero = torch.zeros(4)
    >>> round(domain_adversarial_loss(zero, zero).item(), 6)  # a discriminator at chance: log 2
    0.693147
    """
    ds, dt = source_logits.reshape(-1), target_logits.reshape(-1)
    if len(ds) == 0 or len(dt) == 0:
        raise ValueError(f"domain_adversarial_loss needs both domains, got {len(ds)} source and {len(dt)} target logits")
    dtype = _compute_dtype(ds, dt)
    logits = torch.cat([ds, dt]).to(dtype)
    labels = torch.cat([torch.zeros(len(ds), dtype=dtype, device=logits.device),
                        torch.ones(len(dt), dtype=dtype, device=logits.device)])
    weight = None
    if source_weight is not None or target_weight is not None:
        ws = torch.ones_like(ds, dtype=dtype) if source_weight is None else source_weight.reshape(-1).to(dtype)
        wt = torch.ones_like(dt, dtype=dtype) if target_weight is None else target_weight.reshape(-1).to(dtype)
        if len(ws) != len(ds) or len(wt) != len(dt):
            raise ValueError(f"weights of {len(ws)} and {len(wt)} rows for {len(ds)} source and {len(dt)} target logits")
        weight = torch.cat([ws, wt])
    return nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=weight)


class DomainAdversarialLoss(nn.Module):
    r"""DANN's adversarial loss as a module [Ganin2016]_, modelled on TLlib's
    ``DomainAdversarialLoss``: gradient reversal :math:`R_\lambda`, then the domain
    ``discriminator`` on source and target features in one pass, then
    :func:`domain_adversarial_loss` (formula there).

    ``coeff`` is :math:`\lambda`, a plain attribute to follow a schedule such as
    :func:`dann_lambda`. Gradients reach the discriminator unchanged (it learns to tell the
    domains apart) and the features multiplied by :math:`-\lambda` (they learn to fool it).

    Shapes: ``source_features (n_s, F)``, ``target_features (n_t, F)``; the discriminator maps
    ``(n, F)`` to ``(n, 1)`` logits; optional weights ``(n_s,)``, ``(n_t,)``; returns a scalar.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> loss = DomainAdversarialLoss(nn.Linear(8, 1), coeff=0.5)
    >>> fs, ft = torch.randn(16, 8, requires_grad=True), torch.randn(12, 8)
    >>> loss(fs, ft).backward()  # fs.grad points away from what separates the domains
    """

    def __init__(self, discriminator: nn.Module, coeff: float = 1.0):
        super().__init__()
        self.discriminator = discriminator
        self.coeff = float(coeff)

    def forward(self, source_features: Tensor, target_features: Tensor, source_weight: Tensor | None = None,
                target_weight: Tensor | None = None) -> Tensor:
        features = grad_reverse(torch.cat([source_features, target_features]), self.coeff)
        logits = self.discriminator(features).reshape(-1)  # (cast to float32 at least by the loss)
        n = len(source_features)
        return domain_adversarial_loss(logits[:n], logits[n:], source_weight, target_weight)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


# =======================================================================================
# Relational and optimal-transport losses (relation-based and OT-based transfer)
# =======================================================================================
# These move relations between examples (an optimal-transport plan between the two
# batches; pairwise distances and angles) rather than matching a statistic of each
# feature distribution. The transport solvers are POT's (Flamary et al., JMLR 2021),
# imported when first used; nothing here re-derives a solver.
#
# .. [Damodaran2018] B. B. Damodaran, B. Kellenberger, R. Flamary, D. Tuia, N. Courty.
#    "DeepJDOT: Deep Joint Distribution Optimal Transport for Unsupervised Domain
#    Adaptation". ECCV 2018.
# .. [Park2019] W. Park, D. Kim, Y. Lu, M. Cho. "Relational Knowledge Distillation".
#    CVPR 2019.

def jdot_cost(source_features: Tensor, target_features: Tensor, source_labels: Tensor,
              target_logits: Tensor, alpha: float, lambda_t: float) -> Tensor:
    r"""DeepJDOT's joint ground cost between every source and target example [Damodaran2018]_ (eq. 6).

    .. math:: C_{ij} = \alpha \lVert f(x^s_i) - f(x^t_j) \rVert_2^2
                       + \lambda_t \, \mathcal{L}_{CE}\big(y^s_i, g(f(x^t_j))\big)

    A target example is cheap to pair with a source example when their features are
    close *and* the classifier already gives the target example the source label.

    Parameters
    ----------
    source_features, target_features : Tensor, shape (n_s, d) and (n_t, d)
    source_labels : Tensor, int64, shape (n_s,)
    target_logits : Tensor, shape (n_t, C): the classifier's logits on the target batch.
    alpha, lambda_t : float, >= 0: weights of the feature and the label term.

    Returns
    -------
    Tensor, shape (n_s, n_t), differentiable in the features and the logits.
    """
    _check_pair(source_features, target_features, 1, "jdot_cost")
    if source_labels.shape != (len(source_features),):
        raise ValueError(f"jdot_cost: {len(source_features)} source rows but labels of shape {tuple(source_labels.shape)}")
    if target_logits.dim() != 2 or len(target_logits) != len(target_features):
        raise ValueError(f"jdot_cost: target logits of shape {tuple(target_logits.shape)} for "
                         f"{len(target_features)} target rows")
    dtype = _compute_dtype(source_features, target_features, target_logits)
    with _no_autocast(source_features.device):
        fs, ft = source_features.to(dtype), target_features.to(dtype)
        feature_cost = (fs.pow(2).sum(1, keepdim=True) + ft.pow(2).sum(1)[None, :] - 2.0 * fs @ ft.T).clamp_min(0.0)
        # CE(y_i, g(x_j)) = -log softmax(g(x_j))[y_i], for every pair (i, j) at once.
        label_cost = -torch.log_softmax(target_logits.to(dtype), dim=1)[:, source_labels].T
        return alpha * feature_cost + lambda_t * label_cost


def ot_plan(cost: Tensor) -> Tensor:
    r"""The exact optimal-transport plan between uniform marginals for ``cost`` (POT's ``ot.emd``).

    .. math:: \gamma^\star = \arg\min_{\gamma \in \Pi(a, b)} \langle \gamma, C \rangle,
              \qquad a = \tfrac{1}{n_s}\mathbf 1,\ b = \tfrac{1}{n_t}\mathbf 1

    (network simplex; Bonneel et al., SIGGRAPH Asia 2011, as wrapped by POT). The plan is a
    constant for the gradient, as in DeepJDOT's alternating optimisation [Damodaran2018]_:
    solved on the detached cost, on the CPU in float64, and returned on ``cost``'s device.

    Returns
    -------
    Tensor, shape (n_s, n_t), float64 rows summing to 1/n_s and columns to 1/n_t.
    """
    import ot

    if cost.dim() != 2 or min(cost.shape) < 1:
        raise ValueError(f"ot_plan expects a non-empty (n_s, n_t) cost, got shape {tuple(cost.shape)}")
    matrix = cost.detach().to("cpu", torch.float64).numpy()
    ns, nt = matrix.shape
    a = torch.full((ns,), 1.0 / ns, dtype=torch.float64).numpy()
    b = torch.full((nt,), 1.0 / nt, dtype=torch.float64).numpy()
    plan = ot.emd(a, b, matrix)
    return torch.from_numpy(plan).to(cost.device)


def jdot_loss(source_features: Tensor, target_features: Tensor, source_labels: Tensor,
              target_logits: Tensor, alpha: float = 0.1, lambda_t: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""DeepJDOT's alignment term on one pair of minibatches [Damodaran2018]_ (eq. 7, second part).

    .. math:: \ell_{\mathrm{JDOT}} = \sum_{i,j} \gamma^\star_{ij} C_{ij},
              \qquad \gamma^\star = \texttt{ot.emd}(a, b, C)

    with the joint cost :math:`C` of :func:`jdot_cost` and the plan of :func:`ot_plan`
    (fixed for the gradient, which then flows through :math:`C` into the features and the
    classifier). The source cross-entropy, the paper's first term, is the strategy's task loss.

    Returns
    -------
    (loss, plan): the 0-d differentiable loss and the (n_s, n_t) plan used.
    """
    cost = jdot_cost(source_features, target_features, source_labels, target_logits, alpha, lambda_t)
    plan = ot_plan(cost).to(cost.dtype)
    return (plan * cost).sum(), plan


def _pairwise_distances(z: Tensor) -> Tensor:
    """Euclidean distances between the rows of ``z`` (exact zeros on the diagonal)."""
    sq = (z.pow(2).sum(1, keepdim=True) + z.pow(2).sum(1)[None, :] - 2.0 * z @ z.T).clamp_min(1e-12)
    distances = sq.sqrt()
    return distances * (1.0 - torch.eye(len(z), dtype=z.dtype, device=z.device))


def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    r"""RKD's distance-wise loss [Park2019]_ (eqs. 4-5): keep the teacher's normalised pairwise distances.

    .. math:: \psi_D(t_i, t_j) = \frac{\lVert t_i - t_j \rVert_2}{\mu},
              \qquad \mu = \frac{1}{|\mathcal P|} \sum_{(i,j) \in \mathcal P} \lVert t_i - t_j \rVert_2,
    .. math:: \ell_{D} = \frac{1}{|\mathcal P|} \sum_{(i,j) \in \mathcal P}
              \mathrm{Huber}\big(\psi_D(s_i, s_j), \psi_D(t_i, t_j)\big)

    over the ordered pairs :math:`\mathcal P = \{(i, j): i \ne j\}`, each embedding normalised
    by its own mean distance (so the two may differ in scale and dimension); Huber is
    ``smooth_l1`` with threshold 1. The teacher is a constant (detached).

    Parameters
    ----------
    student, teacher : Tensor, shape (n, d_s) and (n, d_t), the same n >= 2 examples.
    """
    if student.dim() != 2 or teacher.dim() != 2 or len(student) != len(teacher) or len(student) < 2:
        raise ValueError(f"rkd_distance_loss needs (n, d) embeddings of the same n >= 2 examples, got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    dtype = _compute_dtype(student, teacher)
    with _no_autocast(student.device):
        n = len(student)
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=student.device)
        ds = _pairwise_distances(student.to(dtype))[off_diagonal]
        dt = _pairwise_distances(teacher.detach().to(dtype))[off_diagonal]
        ds = ds / ds.mean().clamp_min(1e-12)
        dt = dt / dt.mean().clamp_min(1e-12)
        return torch.nn.functional.smooth_l1_loss(ds, dt)


def _angle_cosines(z: Tensor) -> Tensor:
    """``cos[j, i, k]`` = cosine of the angle at vertex ``j`` between ``z_i`` and ``z_k``."""
    e = z[None, :, :] - z[:, None, :]                                   # e[j, i] = z_i - z_j
    e = e / e.norm(dim=2, keepdim=True).clamp_min(1e-12)
    return e @ e.transpose(1, 2)


def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    r"""RKD's angle-wise loss [Park2019]_ (eqs. 6-7): keep the angles the teacher's triples form.

    .. math:: \psi_A(t_i, t_j, t_k) = \langle e^{ij}, e^{kj} \rangle,
              \qquad e^{ij} = \frac{t_i - t_j}{\lVert t_i - t_j \rVert_2},
    .. math:: \ell_{A} = \frac{1}{|\mathcal T|} \sum_{(i,j,k) \in \mathcal T}
              \mathrm{Huber}\big(\psi_A(s_i, s_j, s_k), \psi_A(t_i, t_j, t_k)\big)

    over the ordered triples of distinct examples :math:`\mathcal T` (vertex ``j``); the cosine
    is scale-free, so no normalisation is needed. Memory is O(n² d): use it on minibatches.
    The teacher is a constant (detached).
    """
    if student.dim() != 2 or teacher.dim() != 2 or len(student) != len(teacher) or len(student) < 3:
        raise ValueError(f"rkd_angle_loss needs (n, d) embeddings of the same n >= 3 examples, got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    dtype = _compute_dtype(student, teacher)
    with _no_autocast(student.device):
        n = len(student)
        eye = torch.eye(n, dtype=torch.bool, device=student.device)
        distinct = ~(eye[:, :, None] | eye[:, None, :] | eye[None, :, :])   # j != i, j != k, i != k
        cs = _angle_cosines(student.to(dtype))[distinct]
        ct = _angle_cosines(teacher.detach().to(dtype))[distinct]
        return torch.nn.functional.smooth_l1_loss(cs, ct)


# =======================================================================================
# Prediction-based losses (they act on the classifier's outputs on the target)
# =======================================================================================
# .. [Jin2020] Y. Jin, X. Wang, M. Long, J. Wang. "Minimum Class Confusion for Versatile
#    Domain Adaptation". ECCV 2020.

def prediction_entropy(probabilities: Tensor) -> Tensor:
    r"""Shannon entropy of each row of a probability matrix, in nats.

    .. math:: H(p_i) = -\sum_c p_{ic} \log p_{ic} \qquad (0 \log 0 = 0)

    Parameters
    ----------
    probabilities : Tensor, shape (n, C)
        Rows that sum to 1.

    Returns
    -------
    Tensor, shape (n,)
    """
    p = probabilities
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(1)


def mcc_loss(logits: Tensor, temperature: float = 2.5) -> Tensor:
    r"""Minimum Class Confusion loss [Jin2020]_ on a batch of (target) logits.

    With temperature-scaled predictions :math:`\hat Y = \mathrm{softmax}(Z / T)` (shape
    ``(B, C)``), entropy-based example weights that favour confident examples

    .. math:: W_{ii} = \frac{B \, (1 + e^{-H(\hat y_i)})}{\sum_{i'} (1 + e^{-H(\hat y_{i'})})},

    the class-confusion matrix :math:`\tilde C = \hat Y^\top W \hat Y` (``(C, C)``, symmetric),
    normalised per class :math:`C_{jj'} = \tilde C_{jj'} / \sum_{j''} \tilde C_{jj''}`, the loss is
    the confusion between different classes, averaged over classes:

    .. math:: \mathcal{L}_{MCC} = \frac{1}{C} \sum_{j} \sum_{j' \ne j} C_{jj'}

    It is 0 when every prediction is one-hot and every class occurs in the batch, and
    ``(C - 1) / C`` when every prediction is uniform. The weights are constants (detached),
    as in the authors' code (TLlib's ``MinimumClassConfusionLoss``). A class with no
    probability mass at all (every row underflows to 0 there) contributes 0.

    Parameters
    ----------
    logits : Tensor, shape (B, C)
        Classifier outputs on a target batch, ``B >= 1``, ``C >= 2``.
    temperature : float
        ``T > 0``; the paper rescales by ``T`` (2.5 in its experiments) to soften the
        over-confident predictions of a source-trained classifier.

    Returns
    -------
    Tensor
        0-d, differentiable, float32 (float64 for float64 logits).
    """
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"mcc_loss needs logits of shape (B >= 1, C >= 2), got {tuple(logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dtype = _compute_dtype(logits)
    with _no_autocast(logits.device):
        batch, classes = logits.shape
        p = torch.softmax(logits.to(dtype) / temperature, dim=1)
        weight = 1.0 + torch.exp(-prediction_entropy(p.detach()))
        weight = batch * weight / weight.sum()
        confusion = (p * weight[:, None]).T @ p
        confusion = confusion / confusion.sum(1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        return (confusion.sum() - confusion.trace()) / classes


# .. [Lee2013] D.-H. Lee. "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning
#    Method for Deep Neural Networks". ICML Workshops 2013.
# .. [Sohn2020] K. Sohn et al. "FixMatch: Simplifying Semi-Supervised Learning with Consistency
#    and Confidence". NeurIPS 2020.

def pseudo_label_loss(weak_logits: Tensor, strong_logits: Tensor, threshold: float | Tensor = 0.95,
                      selected: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""Confidence-thresholded pseudo-label loss: FixMatch's unlabelled term [Sohn2020]_ (eq. 4);
    with ``strong_logits`` the same as ``weak_logits``, the plain pseudo-label loss [Lee2013]_.

    The prediction on the weak view, :math:`q_i = \mathrm{softmax}(z^{w}_i)`, is a constant
    target (no gradient); only examples it is confident about count, and the mean runs over
    the whole batch of ``B``, so that few confident examples make a small loss:

    .. math:: \ell_u = \frac{1}{B} \sum_{i=1}^{B} \mathbb{1}[\max_c q_{ic} \ge \tau]\,
              \mathrm{CE}\big(\hat y_i, z^{s}_i\big), \qquad \hat y_i = \arg\max_c q_{ic}

    Parameters
    ----------
    weak_logits, strong_logits : Tensor, shape (B, C)
        Logits on the weak and the strong view of the same target batch.
    threshold : float or Tensor of shape (C,)
        Confidence :math:`\tau \in [0, 1]` (FixMatch: 0.95), or one per class, applied by
        the pseudo-label's class (:math:`\tau_{\hat y_i}`; see :func:`curriculum_thresholds`).
    selected : Tensor of shape (B,), bool, optional
        Which examples count, chosen otherwise (e.g. :func:`class_balanced_selection`); it
        replaces the threshold's test :math:`\mathbb{1}[\max_c q_{ic} \ge \tau]`.

    Returns
    -------
    loss : Tensor
        0-d, differentiable through ``strong_logits`` only; float32 (float64 for float64 logits).
    mask : Tensor, shape (B,), bool
        Which examples passed the threshold (their mean is the coverage).
    pseudo_labels : Tensor, shape (B,), int64
        :math:`\hat y`, for every example.
    """
    if weak_logits.ndim != 2 or weak_logits.shape != strong_logits.shape or len(weak_logits) == 0:
        raise ValueError("pseudo_label_loss needs weak and strong logits of one shape (B >= 1, C), got "
                         f"{tuple(weak_logits.shape)} and {tuple(strong_logits.shape)}")
    per_class = isinstance(threshold, Tensor)
    if per_class and threshold.shape != weak_logits.shape[1:]:
        raise ValueError(f"per-class thresholds need shape ({weak_logits.shape[1]},), got {tuple(threshold.shape)}")
    if not per_class and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    dtype = _compute_dtype(weak_logits, strong_logits)
    with _no_autocast(weak_logits.device):
        confidence, pseudo_labels = torch.softmax(weak_logits.detach().to(dtype), dim=1).max(1)
        if selected is not None:
            if selected.shape != confidence.shape:
                raise ValueError(f"selected needs shape ({len(confidence)},), got {tuple(selected.shape)}")
            mask = selected.bool()
        else:
            mask = confidence >= (threshold.to(dtype)[pseudo_labels] if per_class else threshold)
        ce = torch.nn.functional.cross_entropy(strong_logits.to(dtype), pseudo_labels, reduction="none")
        return (ce * mask.to(dtype)).mean(), mask, pseudo_labels


# .. [Zou2018] Y. Zou, Z. Yu, B. V. K. Vijaya Kumar, J. Wang. "Unsupervised Domain Adaptation
#    for Semantic Segmentation via Class-Balanced Self-Training". ECCV 2018.

def class_balanced_selection(probabilities: Tensor, fraction: float) -> Tensor:
    r"""Class-balanced pseudo-label selection, CBST-style [Zou2018]_, within one batch: for each
    predicted class, the most confident ``fraction`` of the examples predicted as that class.

    With :math:`\hat y_i = \arg\max_c p_{ic}`, :math:`n_c = |\{i : \hat y_i = c\}|` and
    :math:`r_i` the rank of :math:`\max_c p_{ic}` among the examples of its class (0 = most
    confident; ties go to the earlier row), example ``i`` is selected when
    :math:`r_i < \lceil \text{fraction} \cdot n_{\hat y_i} \rceil`. Every predicted class
    keeps its share, so a class the model is less sure of is not starved by a confident one
    (a fixed threshold's bias towards easy classes), and some examples are always selected.

    Parameters
    ----------
    probabilities : Tensor, shape (B, C)
    fraction : float
        In [0, 1]; CBST grows it from 0.2 towards 0.5 over training.

    Returns
    -------
    Tensor, shape (B,), bool
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    confidence, labels = probabilities.detach().max(1)
    rows = torch.arange(len(labels), device=labels.device)
    same = labels[:, None] == labels[None, :]
    ahead = (confidence[None, :] > confidence[:, None]) | \
        ((confidence[None, :] == confidence[:, None]) & (rows[None, :] < rows[:, None]))
    rank, count = (same & ahead).sum(1), same.sum(1)
    return rank < torch.ceil(fraction * count.to(confidence.dtype))


# .. [Zhang2021] B. Zhang et al. "FlexMatch: Boosting Semi-Supervised Learning with Curriculum
#    Pseudo Labeling". NeurIPS 2021.

def curriculum_thresholds(assigned: Tensor, num_classes: int, threshold: float) -> Tensor:
    r"""FlexMatch's class-wise thresholds, with its threshold warm-up [Zhang2021]_ (eqs. 6, 7, 11).

    ``assigned[n]`` is the class that unlabelled example ``n`` was last predicted with
    confidence at least :math:`\tau`, or ``-1`` (never yet). With
    :math:`\sigma_c` the number of examples assigned to class ``c`` and ``N`` their count,

    .. math:: \beta_c = \frac{\sigma_c}{\max\big(\max_{c'} \sigma_{c'},\; N - \sum_{c'} \sigma_{c'}\big)},
              \qquad \mathcal{T}_c = \frac{\beta_c}{2 - \beta_c}\, \tau

    A class the model is confident about for few examples yet (a hard class, or any class
    early in training, while most examples are unassigned) gets a low threshold, so that
    it still gets pseudo-labels; a well-learnt class gets :math:`\tau`.

    Parameters
    ----------
    assigned : Tensor, shape (N,), int64
        Classes in ``[0, num_classes)`` or ``-1``.
    num_classes : int
    threshold : float
        :math:`\tau \in [0, 1]`.

    Returns
    -------
    Tensor, shape (num_classes,), float32, on ``assigned``'s device.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if assigned.ndim != 1 or len(assigned) == 0:
        raise ValueError(f"assigned must be a non-empty 1-D tensor, got shape {tuple(assigned.shape)}")
    sigma = torch.bincount(assigned[assigned >= 0], minlength=num_classes).float()
    if len(sigma) > num_classes:
        raise ValueError(f"assigned holds a class >= num_classes={num_classes}")
    unused = (assigned < 0).sum().float()
    beta = sigma / torch.maximum(sigma.max(), unused).clamp_min(1.0)
    return beta / (2.0 - beta) * threshold


# .. [Long2018] M. Long, Z. Cao, J. Wang, M. I. Jordan. "Conditional Adversarial Domain
#    Adaptation". NeurIPS 2018.

def multilinear_map(features: Tensor, predictions: Tensor) -> Tensor:
    r"""CDAN's multilinear conditioning [Long2018]_ (eq. 4): the flattened outer product of each
    example's features and class predictions.

    .. math:: T_\otimes(f, g) = \mathrm{vec}(g \otimes f) \in \mathbb{R}^{C \cdot d_f},
              \qquad [T_\otimes]_{c d_f + k} = g_c f_k

    Parameters
    ----------
    features : Tensor, shape (B, d_f)
    predictions : Tensor, shape (B, C)
        Usually softmax probabilities.

    Returns
    -------
    Tensor, shape (B, C * d_f)
    """
    if features.ndim != 2 or predictions.ndim != 2 or len(features) != len(predictions):
        raise ValueError(f"multilinear_map needs (B, d_f) features and (B, C) predictions, got "
                         f"{tuple(features.shape)} and {tuple(predictions.shape)}")
    return (predictions.unsqueeze(2) * features.unsqueeze(1)).flatten(1)


def randomized_multilinear_map(features: Tensor, predictions: Tensor, r_features: Tensor,
                               r_predictions: Tensor) -> Tensor:
    r"""CDAN's randomized multilinear map [Long2018]_ (eq. 5), for when :math:`C \cdot d_f` is too
    large: random projections of each factor, multiplied element-wise.

    .. math:: T_\odot(f, g) = \frac{1}{\sqrt{d}} (R_f f) \odot (R_g g)

    With :math:`R_f, R_g` of independent standard normal entries (fixed, not trained), the inner
    product of two such maps is an unbiased estimate of that of the full multilinear maps:
    :math:`\mathbb{E}\langle T_\odot(f,g), T_\odot(f',g')\rangle = \langle f, f'\rangle\langle g, g'\rangle`.

    Parameters
    ----------
    features : Tensor, shape (B, d_f)
    predictions : Tensor, shape (B, C)
    r_features : Tensor, shape (d, d_f)
    r_predictions : Tensor, shape (d, C)

    Returns
    -------
    Tensor, shape (B, d)
    """
    d = r_features.shape[0]
    if r_predictions.shape[0] != d or r_features.shape[1] != features.shape[1] \
            or r_predictions.shape[1] != predictions.shape[1]:
        raise ValueError(f"random matrices {tuple(r_features.shape)} and {tuple(r_predictions.shape)} do not fit "
                         f"features {tuple(features.shape)} and predictions {tuple(predictions.shape)}")
    return (features @ r_features.T) * (predictions @ r_predictions.T) / math.sqrt(d)


def entropy_certainty_weights(probabilities: Tensor) -> Tensor:
    r"""CDAN+E's example weights [Long2018]_ (eq. 8), normalised to mean 1 over the batch given
    (call once per domain): certain predictions weigh more.

    .. math:: w_i = \frac{n\,(1 + e^{-H(g_i)})}{\sum_{j=1}^{n} (1 + e^{-H(g_j)})}

    Each weight lies between :math:`1 + 1/C` (uniform prediction) and 2 (one-hot) before
    normalising. Constants: computed without gradient (as TLlib's ``ConditionalDomainAdversarialLoss``).

    Parameters
    ----------
    probabilities : Tensor, shape (n, C)

    Returns
    -------
    Tensor, shape (n,)
    """
    raw = 1.0 + torch.exp(-prediction_entropy(probabilities.detach()))
    return raw * (len(raw) / raw.sum())
