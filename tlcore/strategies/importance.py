"""Instance weighting by estimated density ratios p_t(x)/p_s(x).

A probabilistic domain classifier c(x) = P(target | x) gives
w(x) = c(x)/(1 − c(x)) · n_s/n_t (Bickel et al., ICML 2007; Sugiyama et al.,
"Density Ratio Estimation in Machine Learning", 2012). The weights are clipped
at ``clip`` and normalised to mean 1 over the source, then the source task loss
is the weighted mean of per-example cross-entropies.

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

import numpy as np
import torch
import torch.nn.functional as F

from ..config import spec
from ..data.domain import as_float
from ..data.lazy import is_lazy
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class ImportanceConfig:
    clip: float = spec(10.0, "largest weight (relative to the mean) before normalisation", 1.0, 1000.0)
    regularisation: float = spec(1.0, "inverse L2 strength C of the logistic domain classifier", 1e-4, 1e4)
    max_dims: int = spec(64, "inputs are reduced to at most this many principal components first", 2, 1024)


STREAM_FIT_POINTS = 2000
STREAM_FIT_SIDE = 32


def _normalised_weights(p_target: np.ndarray, prior_ratio: float, clip: float) -> np.ndarray:
    """w = odds · n_s/n_t, normalised to mean 1, clipped at ``clip``, normalised again."""
    w = p_target / np.clip(1.0 - p_target, 1e-12, None) * prior_ratio
    w = w / w.mean()
    w = np.minimum(w, clip)
    return (w / w.mean()).astype(np.float32)


def density_ratio_weights(source: np.ndarray, target: np.ndarray, clip: float, C: float,
                          max_dims: int, seed: int) -> tuple[np.ndarray, float]:
    """Importance weights for ``source`` rows and the classifier's training accuracy.

    Inputs are flattened, standardised and (when wider than ``max_dims``)
    projected on their leading principal components; a logistic regression
    tells target (1) from source (0); w = odds · n_s/n_t, clipped, mean 1.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs, xt = source.reshape(len(source), -1), target.reshape(len(target), -1)
    pooled = np.concatenate([xs, xt]).astype(np.float64)
    pooled = StandardScaler().fit_transform(pooled)
    if pooled.shape[1] > max_dims:  # (never more components than points: a tiny budget would fail)
        pooled = PCA(n_components=min(max_dims, len(pooled)), random_state=seed).fit_transform(pooled)
    labels = np.r_[np.zeros(len(xs)), np.ones(len(xt))]
    clf = LogisticRegression(C=C, max_iter=1000).fit(pooled, labels)
    p_target = clf.predict_proba(pooled[: len(xs)])[:, 1]
    return _normalised_weights(p_target, len(xs) / len(xt), clip), float(clf.score(pooled, labels))


def _classifier_inputs(x: torch.Tensor) -> np.ndarray:
    """Float inputs as float64 rows, images wider than STREAM_FIT_SIDE downsampled to it first."""
    if x.ndim == 4 and max(x.shape[-2:]) > STREAM_FIT_SIDE:
        size = (min(x.shape[-2], STREAM_FIT_SIDE), min(x.shape[-1], STREAM_FIT_SIDE))
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(len(x), -1).double().cpu().numpy()


def streamed_density_ratio_weights(ctx, clip: float, C: float, max_dims: int, seed: int) -> tuple[np.ndarray, float]:
    """:func:`density_ratio_weights` for streamed data (see the module docstring): the same
    classifier and weights, fitted on seeded subsets, applied to every source example."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    generator = torch.Generator().manual_seed(seed)
    fit = []
    for name in ("source", "target"):
        x = ctx.data[name].x
        rows = torch.randperm(len(x), generator=generator)[:STREAM_FIT_POINTS].sort().values
        fit.append(_classifier_inputs(as_float(x[rows])))
    pooled = np.concatenate(fit)
    scaler = StandardScaler().fit(pooled)
    pooled = scaler.transform(pooled)
    pca = PCA(n_components=min(max_dims, len(pooled)), random_state=seed).fit(pooled) \
        if pooled.shape[1] > max_dims else None
    if pca is not None:
        pooled = pca.transform(pooled)
    labels = np.r_[np.zeros(len(fit[0])), np.ones(len(fit[1]))]
    clf = LogisticRegression(C=C, max_iter=1000).fit(pooled, labels)
    p_target = []
    for chunk in ctx.inputs("source"):
        z = scaler.transform(_classifier_inputs(chunk))
        p_target.append(clf.predict_proba(pca.transform(z) if pca is not None else z)[:, 1])
    return _normalised_weights(np.concatenate(p_target), len(fit[0]) / len(fit[1]), clip), \
        float(clf.score(pooled, labels))


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
            w, acc = streamed_density_ratio_weights(ctx, p.clip, p.regularisation, p.max_dims, ctx.config.seed)
            self.weights_ = torch.from_numpy(w).to(ctx.device)
            self.classifier_accuracy = acc
            return
        xs = as_float(ctx.pair.source.x_train).cpu().numpy()
        xt = as_float(ctx.pair.target.x_train).cpu().numpy()
        w, acc = density_ratio_weights(xs, xt, p.clip, p.regularisation, p.max_dims, ctx.config.seed)
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
