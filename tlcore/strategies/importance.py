"""Instance weighting by estimated density ratios p_t(x)/p_s(x).

A probabilistic domain classifier c(x) = P(target | x) gives
w(x) = c(x)/(1 − c(x)) · n_s/n_t (Bickel et al., ICML 2007; Sugiyama et al.,
"Density Ratio Estimation in Machine Learning", 2012). The source task loss is
the weighted mean of per-example cross-entropies.

The bound: the weights are normalised to mean 1 over the source, and then no
weight exceeds ``clip`` (:func:`normalised_weights`). The largest weights are
set to one common cap t chosen so that t equals ``clip`` times the mean of the
capped weights; clipping first and normalising after (the obvious order) lets
the renormalisation push the clipped weights back above ``clip``.

The domain classifier is injectable, as in skada: ``classifier`` names one of
:data:`DOMAIN_CLASSIFIERS` (a logistic regression by default; a two-layer MLP
or gradient-boosted trees see non-linear shifts, such as a rotation of the
moons about their centre, to which a linear classifier is blind and gives
weights of about 1), and :func:`density_ratio_weights` takes any scikit-learn
classifier with ``predict_proba``. It sits behind one pipeline
(:func:`domain_pipeline`): standardisation, a PCA to at most ``max_dims``
components for wide inputs, then the classifier.

On streamed images (read from files when needed: ``LazyImages`` inputs)
the classifier is fitted on a seeded subset of at most
:data:`STREAM_FIT_POINTS` inputs per domain, with images larger than
:data:`STREAM_FIT_SIDE` pixels downsampled to that size first (antialiased;
the flattened 224 px image has 150,528 values, more than a linear classifier
on a few thousand points can use); then every source example's weight comes
from one pass over the source through the run's DataLoader.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import UNLESS_DEFAULT, spec
from ..data.domain import as_float
from ..data.lazy import is_lazy
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


def _logistic(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=1000)


def _mlp(C: float, seed: int):
    from sklearn.neural_network import MLPClassifier
    # L2 penalty alpha = 1/C, as for the logistic regression; early stopping on a held-out 10 %
    # keeps the probabilities from saturating at 0 and 1 (which would give infinite odds).
    return MLPClassifier(hidden_layer_sizes=(64, 64), alpha=1.0 / C, max_iter=500, early_stopping=True,
                         random_state=seed)


def _gradient_boosting(C: float, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(max_iter=100, l2_regularization=1.0 / C, random_state=seed)


# name -> factory(C, seed) of an unfitted scikit-learn classifier with predict_proba
DOMAIN_CLASSIFIERS: dict[str, Callable[[float, int], Any]] = {
    "logistic": _logistic,
    "mlp": _mlp,
    "gradient_boosting": _gradient_boosting,
}


@dataclass(frozen=True)
class ImportanceConfig:
    clip: float = spec(10.0, "largest weight after normalisation to mean 1 (1 = every weight 1)", 1.0, 1000.0)
    regularisation: float = spec(1.0, "inverse L2 strength C of the domain classifier (the MLP and the boosted "
                                      "trees use an L2 penalty of 1/C)", 1e-4, 1e4)
    max_dims: int = spec(64, "inputs are reduced to at most this many principal components first", 2, 1024)
    classifier: str = spec("logistic", "domain classifier: logistic (linear), mlp or gradient_boosting "
                                       "(non-linear: they see shifts a linear classifier cannot, such as a rotation)",
                           choices=tuple(DOMAIN_CLASSIFIERS), result=UNLESS_DEFAULT)


STREAM_FIT_POINTS = 2000
STREAM_FIT_SIDE = 32


def normalised_weights(p_target: np.ndarray, prior_ratio: float, clip: float) -> np.ndarray:
    """Density-ratio weights w = odds · n_s/n_t, normalised to mean 1 with max(w) ≤ ``clip``.

    The weights above a cap t are set to t, with t chosen so that after normalising to mean 1
    the cap equals ``clip`` exactly: with the k largest weights capped and S the sum of the
    others, t = clip · S / (n − clip · k). Weights already within the bound are only
    normalised; ``clip`` = 1 gives every weight 1.
    """
    if clip < 1.0:
        raise ValueError(f"clip must be at least 1 (the mean), got {clip}")
    w = p_target / np.clip(1.0 - p_target, 1e-12, None) * prior_ratio
    w = w / w.mean()
    n = len(w)
    if w.max() > clip:
        desc = np.sort(w)[::-1]
        rest = np.cumsum(desc[::-1])[::-1]  # rest[k] = sum of all but the k largest
        k = np.arange(1, n)
        room = n - clip * k
        with np.errstate(divide="ignore", invalid="ignore"):
            cap = np.where(room > 0, clip * rest[1:] / room, np.inf)
        fits = (room > 0) & (desc[1:] <= cap) & (cap <= desc[:-1])
        if not fits.any():  # clip too tight for any weight to stay below the cap: all equal
            return np.ones(n, dtype=np.float32)
        w = np.minimum(w, cap[np.argmax(fits)])
    return (w / w.mean()).astype(np.float32)


def domain_pipeline(n_features: int, classifier, max_dims: int, seed: int, n_points: int):
    """The one scikit-learn pipeline that tells target (1) from source (0): standardise, reduce to
    at most ``max_dims`` principal components when wider (never more components than points: a
    tiny budget would fail), then ``classifier``."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [StandardScaler()]
    if n_features > max_dims:
        steps.append(PCA(n_components=min(max_dims, n_points), random_state=seed))
    return make_pipeline(*steps, classifier)


def _classifier(classifier, C: float, seed: int):
    if isinstance(classifier, str):
        return DOMAIN_CLASSIFIERS[classifier](C, seed)
    from sklearn.base import clone
    return clone(classifier)


def density_ratio_weights(source: np.ndarray, target: np.ndarray, clip: float, C: float,
                          max_dims: int, seed: int, classifier="logistic") -> tuple[np.ndarray, float]:
    """Importance weights for ``source`` rows and the domain classifier's training accuracy.

    Inputs are flattened and go through :func:`domain_pipeline`; ``classifier`` is a name in
    :data:`DOMAIN_CLASSIFIERS` or any scikit-learn classifier with ``predict_proba`` (cloned,
    never fitted in place); w = odds · n_s/n_t, normalised to mean 1 and bounded by ``clip``.
    """
    xs, xt = source.reshape(len(source), -1), target.reshape(len(target), -1)
    pooled = np.concatenate([xs, xt]).astype(np.float64)
    labels = np.r_[np.zeros(len(xs)), np.ones(len(xt))]
    model = domain_pipeline(pooled.shape[1], _classifier(classifier, C, seed), max_dims, seed, len(pooled))
    model.fit(pooled, labels)
    p_target = model.predict_proba(pooled[: len(xs)])[:, 1]
    return normalised_weights(p_target, len(xs) / len(xt), clip), float(model.score(pooled, labels))


def _classifier_inputs(x: torch.Tensor) -> np.ndarray:
    """Float inputs as float64 rows, images wider than STREAM_FIT_SIDE downsampled to it first."""
    if x.ndim == 4 and max(x.shape[-2:]) > STREAM_FIT_SIDE:
        size = (min(x.shape[-2], STREAM_FIT_SIDE), min(x.shape[-1], STREAM_FIT_SIDE))
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(len(x), -1).double().cpu().numpy()


def streamed_density_ratio_weights(ctx, clip: float, C: float, max_dims: int, seed: int,
                                   classifier="logistic") -> tuple[np.ndarray, float]:
    """:func:`density_ratio_weights` for streamed data (see the module docstring): the same
    pipeline and weights, fitted on seeded subsets, applied to every source example."""
    generator = torch.Generator().manual_seed(seed)
    fit = []
    for name in ("source", "target"):
        x = ctx.data[name].x
        rows = torch.randperm(len(x), generator=generator)[:STREAM_FIT_POINTS].sort().values
        fit.append(_classifier_inputs(as_float(x[rows])))
    pooled = np.concatenate(fit)
    labels = np.r_[np.zeros(len(fit[0])), np.ones(len(fit[1]))]
    model = domain_pipeline(pooled.shape[1], _classifier(classifier, C, seed), max_dims, seed, len(pooled))
    model.fit(pooled, labels)
    p_target = [model.predict_proba(_classifier_inputs(chunk))[:, 1] for chunk in ctx.inputs("source")]
    return normalised_weights(np.concatenate(p_target), len(fit[0]) / len(fit[1]), clip), \
        float(model.score(pooled, labels))


class ImportanceWeighting(Strategy):
    name = "importance_weighting"
    summary = ("Instance-based: reweight source examples by estimated density ratios p_t(x)/p_s(x) "
               "from a domain classifier, then train on the weighted source loss.")
    Config = ImportanceConfig

    def __init__(self, params):
        super().__init__(params)
        self.weights_ = None
        self.classifier_accuracy = float("nan")

    def prepare(self, ctx):
        p = self.params
        if is_lazy(ctx.pair.source.x_train) or is_lazy(ctx.pair.target.x_train):  # decoded from files when read
            w, acc = streamed_density_ratio_weights(ctx, p.clip, p.regularisation, p.max_dims, ctx.config.seed,
                                                    p.classifier)
            self.weights_ = torch.from_numpy(w).to(ctx.device)
            self.classifier_accuracy = acc
            return
        xs = as_float(ctx.pair.source.x_train).cpu().numpy()
        xt = as_float(ctx.pair.target.x_train).cpu().numpy()
        w, acc = density_ratio_weights(xs, xt, p.clip, p.regularisation, p.max_dims, ctx.config.seed, p.classifier)
        self.weights_ = torch.from_numpy(w).to(ctx.device)
        self.classifier_accuracy = acc

    def phases(self, ctx):
        supervised = supervised_streams(ctx)

        def losses(batch, c):
            out = forward_streams(c.model, batch, supervised)
            return {"task": task_loss(out, batch, supervised, sample_weight=self.weights_[batch["source"].index])}
        return [Phase("train", supervised, losses)]

    def eval_extras(self, ctx, source_features, target_features):
        w = self.weights_
        ess = (w.sum() ** 2 / (w ** 2).sum() / len(w)).item()
        return {"effective_sample_fraction": ess, "domain_classifier_accuracy": self.classifier_accuracy}

    def artifacts(self):
        return {} if self.weights_ is None else {"importance_weights": self.weights_.cpu().tolist()}
