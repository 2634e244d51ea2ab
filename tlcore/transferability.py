r"""Transferability before training: LogME, the log of maximum evidence (You et al., ICML 2021).

LogME asks how well a *linear* model on fixed features can explain the target
labels, integrating over the weights instead of fitting them, so that the
score cannot be gamed by over-fitting a few examples. For each one-vs-all
target column :math:`y \in \{0, 1\}^n` of the labels and features
:math:`F \in \mathbb{R}^{n \times D}` (one row per example), the model is
Bayesian linear regression

.. math::
    y = F w + \varepsilon, \qquad w \sim \mathcal N(0, \alpha^{-1} I_D), \qquad
    \varepsilon \sim \mathcal N(0, \beta^{-1} I_n),

whose evidence (marginal likelihood, [Bishop2006]_ eq. 3.86) is

.. math::
    \mathcal L(\alpha, \beta) = \log p(y \mid F, \alpha, \beta)
    = \frac n2 \log\beta + \frac D2 \log\alpha - \frac n2 \log 2\pi
      - \frac\beta2 \lVert F m - y \rVert^2 - \frac\alpha2 m^\top m - \frac12 \log\lvert A\rvert,

with :math:`A = \alpha I + \beta F^\top F` and posterior mean :math:`m = \beta A^{-1} F^\top y`.
It is maximised over :math:`(\alpha, \beta)` by MacKay's fixed-point iteration
([You2021]_ Algorithm 1; [Bishop2006]_ §3.5.2): with :math:`\sigma_i` the
eigenvalues of :math:`F^\top F`,

.. math::
    \gamma = \sum_i \frac{\beta\sigma_i}{\alpha + \beta\sigma_i}, \qquad
    \alpha \leftarrow \frac{\gamma}{m^\top m}, \qquad
    \beta \leftarrow \frac{n - \gamma}{\lVert F m - y\rVert^2}.

LogME is the maximum evidence per example, averaged over the classes:
:math:`\frac1C \sum_c \mathcal L_c(\alpha_c^*, \beta_c^*) / n`. Higher is more
transferable; values are comparable between feature sets for the *same*
labelled examples, not between datasets.

Everything runs on one thin SVD :math:`F = U \operatorname{diag}(s) V^\top`
(:math:`r = \min(n, D)` singular values; :math:`\sigma_i = s_i^2`, and the other
:math:`D - r` eigenvalues are 0). With :math:`z = U^\top y`:

.. math::
    m^\top m = \sum_i \frac{\beta^2 s_i^2 z_i^2}{(\alpha + \beta s_i^2)^2}, \quad
    \lVert Fm - y\rVert^2 = \sum_i \Big(\frac{\alpha z_i}{\alpha + \beta s_i^2}\Big)^2
                            + \lVert y\rVert^2 - \lVert z\rVert^2, \quad
    \log\lvert A\rvert = \sum_i \log(\alpha + \beta s_i^2) + (D - r)\log\alpha,

so each iteration costs :math:`O(r)` and the whole score one SVD,
:math:`O(n D \min(n, D))`. As in the paper, features are used as given (no
centring, no bias term).

When the features can fit a target exactly (:math:`N \le D` and full row
rank, the usual case with a few labelled examples per class and wide
features), the evidence rises towards a finite supremum as
:math:`\beta \to \infty` (a noise-free fit) instead of peaking: the iteration
then stops once the evidence no longer changes, at the supremum to within
the tolerance.

References
----------
.. [You2021] K. You, Y. Liu, J. Wang, M. Long. "LogME: Practical Assessment of
   Pre-trained Models for Transfer Learning". ICML 2021.
.. [Bishop2006] C. M. Bishop. "Pattern Recognition and Machine Learning",
   §3.5 (the evidence approximation). Springer, 2006.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EvidenceFit", "log_evidence", "maximise_evidence", "logme_score"]

_LOG_2PI = math.log(2.0 * math.pi)
_LARGEST = 1e300  # cap on α and β, far beyond any value that changes the evidence


@dataclass(frozen=True)
class EvidenceFit:
    """The maximum of the evidence for one target: ``alpha`` (weight precision), ``beta``
    (noise precision), ``log_evidence`` (total, not per example), the number of fixed-point
    ``iterations`` and whether the relative change of both fell below the tolerance."""

    alpha: float
    beta: float
    log_evidence: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _Spectrum:
    """What the evidence needs of the features: singular values, left singular vectors, sizes."""

    u: np.ndarray        # (n, r)
    s2: np.ndarray       # (r,) squared singular values = nonzero-or-not eigenvalues of FᵀF
    n: int
    d: int

    @classmethod
    def of(cls, features: np.ndarray) -> "_Spectrum":
        u, s, _ = np.linalg.svd(features, full_matrices=False)
        return cls(u=u, s2=s * s, n=features.shape[0], d=features.shape[1])


def _as_features(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be a matrix (N, D), got shape {f.shape}")
    if f.shape[0] < 2 or f.shape[1] < 1:
        raise ValueError(f"features need at least 2 rows and 1 column, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or infinite values")
    return f


@dataclass(frozen=True)
class _Projected:
    """A target vector seen from the spectrum: ``z = Uᵀy`` and ``‖(I − UUᵀ) y‖²``, the part of
    ``‖y‖²`` no weights can fit. The latter is computed from the residual vector itself, not as
    ``‖y‖² − ‖z‖²``, whose rounding error the noise precision β would multiply."""

    z: np.ndarray
    outside_span: float

    @classmethod
    def of(cls, spectrum: _Spectrum, y: np.ndarray) -> "_Projected":
        z = spectrum.u.T @ y
        rest = y - spectrum.u @ z
        return cls(z=z, outside_span=float(rest @ rest))


def _terms(spectrum: _Spectrum, target: _Projected, alpha: float, beta: float) -> tuple[float, float, float]:
    """``(mᵀm, ‖Fm − y‖², γ)`` at ``(alpha, beta)`` from the spectrum (see the module docstring)."""
    z = target.z
    denominator = alpha + beta * spectrum.s2
    m_sq = float(np.sum((beta * beta) * spectrum.s2 * z * z / (denominator * denominator)))
    residual_sq = float(np.sum((alpha * z / denominator) ** 2)) + target.outside_span
    gamma = float(np.sum(beta * spectrum.s2 / denominator))
    return m_sq, residual_sq, gamma


def _evidence(spectrum: _Spectrum, target: _Projected, alpha: float, beta: float) -> float:
    n, d, r = spectrum.n, spectrum.d, len(spectrum.s2)
    m_sq, residual_sq, _ = _terms(spectrum, target, alpha, beta)
    log_det_a = float(np.sum(np.log(alpha + beta * spectrum.s2))) + (d - r) * math.log(alpha)
    return (0.5 * n * math.log(beta) + 0.5 * d * math.log(alpha) - 0.5 * n * _LOG_2PI
            - 0.5 * beta * residual_sq - 0.5 * alpha * m_sq - 0.5 * log_det_a)


def _target_vector(targets, n: int) -> np.ndarray:
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(y) != n:
        raise ValueError(f"targets have {len(y)} entries but features have {n} rows")
    if not np.all(np.isfinite(y)):
        raise ValueError("targets contain NaN or infinite values")
    return y


def log_evidence(features, targets, alpha: float, beta: float) -> float:
    r"""The log evidence :math:`\mathcal L(\alpha, \beta)` of one real target vector (module docstring).

    Parameters
    ----------
    features : array-like, shape (N, D)
    targets : array-like, shape (N,)
    alpha, beta : float
        Prior precision of the weights and precision of the noise, both positive.
    """
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"alpha and beta must be positive, got {alpha}, {beta}")
    f = _as_features(features)
    y = _target_vector(targets, f.shape[0])
    spectrum = _Spectrum.of(f)
    return _evidence(spectrum, _Projected.of(spectrum, y), float(alpha), float(beta))


def _maximise(spectrum: _Spectrum, y: np.ndarray, alpha: float, beta: float,
              max_iter: int, tol: float) -> EvidenceFit:
    target = _Projected.of(spectrum, y)
    tiny = np.finfo(np.float64).tiny
    evidence = _evidence(spectrum, target, alpha, beta)
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):
        m_sq, residual_sq, gamma = _terms(spectrum, target, alpha, beta)
        # The guards only matter for degenerate targets (y = 0, or y fitted exactly).
        new_alpha = min(max(gamma / max(m_sq, tiny), tiny), _LARGEST)
        new_beta = min(max((spectrum.n - gamma) / max(residual_sq, tiny), tiny), _LARGEST)
        change = max(abs(new_alpha - alpha) / alpha, abs(new_beta - beta) / beta)
        new_evidence = _evidence(spectrum, target, new_alpha, new_beta)
        gain = new_evidence - evidence
        alpha, beta, evidence = new_alpha, new_beta, new_evidence
        # Parameters settled, or (features that can fit y exactly, D ≥ N: β grows without bound
        # while the evidence tends to its supremum) the evidence no longer moves.
        if change < tol or abs(gain) <= tol * max(1.0, abs(evidence)) * 1e-2:
            converged = True
            break
    return EvidenceFit(alpha=alpha, beta=beta, log_evidence=evidence, iterations=iterations, converged=converged)


def maximise_evidence(features, targets, alpha: float = 1.0, beta: float = 1.0, max_iter: int = 500,
                      tol: float = 1e-8) -> EvidenceFit:
    """Maximise the log evidence of one real target vector over ``(alpha, beta)`` by the
    fixed-point iteration of the module docstring, started at ``(alpha, beta)`` = (1, 1) as in
    [You2021]_. Stops when both change by less than ``tol`` (relative), when the evidence changes
    by less than ``tol/100`` (relative; the case β → ∞ of the module docstring), or after ``max_iter``
    iterations (then ``converged`` is False)."""
    f = _as_features(features)
    y = _target_vector(targets, f.shape[0])
    return _maximise(_Spectrum.of(f), y, float(alpha), float(beta), max_iter, tol)


def logme_score(features: np.ndarray, labels: np.ndarray, max_iter: int = 500, tol: float = 1e-8) -> float:
    r"""LogME of ``features`` for classification ``labels`` ([You2021]_ Algorithm 1).

    One thin SVD of the features, then per class present in ``labels`` the
    evidence of the one-vs-all target :math:`y = [\text{label} = c]` is
    maximised over :math:`(\alpha, \beta)`; the score is the mean over classes
    of the maximum evidence divided by ``N``.

    Parameters
    ----------
    features : np.ndarray, shape (N, D)
        Fixed features, e.g. a trained model's penultimate layer on the labelled
        target examples (:func:`tlcore.embed.extract_features`).
    labels : np.ndarray, shape (N,)
        Integer class labels.

    Returns
    -------
    float
        Higher means the labels are easier to explain linearly from the features.
    """
    f = _as_features(features)
    y = np.asarray(labels).reshape(-1)
    if len(y) != f.shape[0]:
        raise ValueError(f"labels have {len(y)} entries but features have {f.shape[0]} rows")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    spectrum = _Spectrum.of(f)
    evidences = [_maximise(spectrum, (y == c).astype(np.float64), 1.0, 1.0, max_iter, tol).log_evidence
                 for c in np.unique(y)]
    return float(np.mean(evidences)) / f.shape[0]
