"""Instance weighting by estimated density ratios p_t(x)/p_s(x).

A probabilistic domain classifier c(x) = P(target | x) gives
w(x) = c(x)/(1 − c(x)) · n_s/n_t (Bickel et al., ICML 2007; Sugiyama et al.,
"Density Ratio Estimation in Machine Learning", 2012). The weights are clipped
at ``clip`` and normalised to mean 1 over the source, then the source task loss
is the weighted mean of per-example cross-entropies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import spec
from ..data.domain import as_float
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class ImportanceConfig:
    clip: float = spec(10.0, "largest weight (relative to the mean) before normalisation", 1.0, 1000.0)
    regularisation: float = spec(1.0, "inverse L2 strength C of the logistic domain classifier", 1e-4, 1e4)
    max_dims: int = spec(64, "inputs are reduced to at most this many principal components first", 2, 1024)


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
    if pooled.shape[1] > max_dims:
        pooled = PCA(n_components=max_dims, random_state=seed).fit_transform(pooled)
    labels = np.r_[np.zeros(len(xs)), np.ones(len(xt))]
    clf = LogisticRegression(C=C, max_iter=1000).fit(pooled, labels)
    p_target = clf.predict_proba(pooled[: len(xs)])[:, 1]
    w = p_target / np.clip(1.0 - p_target, 1e-12, None) * (len(xs) / len(xt))
    w = w / w.mean()
    w = np.minimum(w, clip)
    return (w / w.mean()).astype(np.float32), float(clf.score(pooled, labels))


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
