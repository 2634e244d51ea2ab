"""CDAN+E: a domain discriminator conditioned on the classifier's predictions through the
multilinear map, with entropy weighting (Long et al., NeurIPS 2018)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import spec
from ..losses import (DomainAdversarialLoss, dann_lambda, entropy_certainty_weights, multilinear_map,
                      randomized_multilinear_map)
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class CDANConfig:
    weight: float = spec(1.0, "largest gradient-reversal coefficient, reached by the end of the ramp", 0.0, 10.0)
    gamma: float = spec(10.0, "steepness of the ramp 2/(1+exp(-γp))-1 over training progress p", 0.0, 100.0)
    hidden: int = spec(64, "hidden units of the two-layer domain discriminator", 4, 4096)
    entropy: bool = spec(True, "CDAN+E: weight examples by the certainty 1+exp(-H) of their prediction, "
                               "normalised per domain (off: plain CDAN)")
    random_above: int = spec(4096, "use the randomized multilinear map when features × classes exceeds this", 1,
                             10**7)
    random_dim: int = spec(1024, "output size d of the randomized multilinear map", 1, 65536)


class Conditioning(nn.Module):
    """What the discriminator sees: :func:`~tlcore.losses.multilinear_map` of features and
    predictions, or :func:`~tlcore.losses.randomized_multilinear_map` when ``feature_dim ×
    classes > random_above``, with fixed random matrices (buffers: saved, never trained)."""

    def __init__(self, feature_dim: int, classes: int, random_above: int, random_dim: int, seed: int):
        super().__init__()
        self.randomized = feature_dim * classes > random_above
        self.output_dim = random_dim if self.randomized else feature_dim * classes
        if self.randomized:
            g = torch.Generator().manual_seed(seed)
            self.register_buffer("r_features", torch.randn(random_dim, feature_dim, generator=g))
            self.register_buffer("r_predictions", torch.randn(random_dim, classes, generator=g))

    def forward(self, features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        if self.randomized:
            return randomized_multilinear_map(features, predictions, self.r_features, self.r_predictions)
        return multilinear_map(features, predictions)


class CDAN(Strategy):
    name = "cdan"
    summary = ("CDAN+E: the domain discriminator sees features ⊗ class predictions, so alignment respects "
               "the classes; certain predictions weigh more (Long et al., NeurIPS 2018).")
    Config = CDANConfig

    def extra_modules(self, ctx):
        p: CDANConfig = self.params
        conditioning = Conditioning(ctx.model.feature_dim, len(ctx.pair.class_names), p.random_above,
                                    p.random_dim, seed=ctx.config.seed)
        h = p.hidden
        return nn.ModuleDict({"conditioning": conditioning, "discriminator": nn.Sequential(
            nn.Linear(conditioning.output_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1))})

    def coefficient(self, ctx) -> float:
        return self.params.weight * dann_lambda(ctx.progress, self.params.gamma)

    def phases(self, ctx):
        p: CDANConfig = self.params
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)
        adversarial = DomainAdversarialLoss(ctx.modules["discriminator"])
        conditioning = ctx.modules["conditioning"]

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            (fs, ls), (ft, lt) = out["source"], out["target"]
            # The predictions condition the discriminator as constants (as the authors' code and
            # TLlib do): the adversarial gradient reaches the features, not the classifier's outputs.
            gs, gt = torch.softmax(ls.detach().float(), 1), torch.softmax(lt.detach().float(), 1)
            ws, wt = (entropy_certainty_weights(gs), entropy_certainty_weights(gt)) if p.entropy else (None, None)
            adversarial.coeff = self.coefficient(c)
            return {"task": task_loss(out, batch, supervised),
                    "domain": adversarial(conditioning(fs.float(), gs), conditioning(ft.float(), gt), ws, wt)}
        return [Phase("adapt", streams, losses)]

    def step_extras(self, ctx):
        return {"grl_coeff": self.coefficient(ctx)}

    @torch.no_grad()
    def eval_extras(self, ctx, source_features, target_features):
        """Accuracy of the conditioned discriminator at telling held-out source from target
        (0.5 = indistinguishable to it)."""
        disc, conditioning, head = ctx.modules["discriminator"], ctx.modules["conditioning"], ctx.model.head
        was_training = disc.training
        disc.eval()

        def logits(f):
            return disc(conditioning(f, torch.softmax(head(f).float(), 1))).squeeze(1)
        correct = (logits(source_features) < 0).float().sum() + (logits(target_features) >= 0).float().sum()
        disc.train(was_training)
        return {"domain_accuracy": (correct / (len(source_features) + len(target_features))).item()}
