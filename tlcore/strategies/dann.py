"""DANN: a domain discriminator behind a gradient-reversal layer (Ganin et al., JMLR 2016)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import spec
from ..losses import DomainAdversarialLoss, dann_lambda
from .base import Strategy, Phase, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class DANNConfig:
    weight: float = spec(1.0, "largest gradient-reversal coefficient, reached by the end of the ramp", 0.0, 10.0)
    gamma: float = spec(10.0, "steepness of the ramp 2/(1+exp(-γp))-1 over training progress p", 0.0, 100.0)
    hidden: int = spec(64, "hidden units of the two-layer domain discriminator", 4, 4096)


class DANN(Strategy):
    name = "dann"
    summary = ("Adversarial alignment: a domain discriminator learns to tell source from target while a "
               "gradient-reversal layer trains the features to fool it (Ganin et al., JMLR 2016).")
    Config = DANNConfig

    def extra_modules(self, ctx):
        h = self.params.hidden
        return nn.ModuleDict({"discriminator": nn.Sequential(
            nn.Linear(ctx.model.feature_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1))})

    def coefficient(self, ctx) -> float:
        return self.params.weight * dann_lambda(ctx.progress, self.params.gamma)

    def phases(self, ctx):
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)
        adversarial = DomainAdversarialLoss(ctx.modules["discriminator"])

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            adversarial.coeff = self.coefficient(c)
            return {"task": task_loss(out, batch, supervised),
                    "domain": adversarial(out["source"][0], out["target"][0])}
        return [Phase("adapt", streams, losses)]

    def step_extras(self, ctx):
        return {"grl_coeff": self.coefficient(ctx)}

    @torch.no_grad()
    def eval_extras(self, ctx, source_features, target_features):
        """Accuracy of the discriminator at telling held-out source from target features
        (0.5 = the domains are indistinguishable to it)."""
        disc = ctx.modules["discriminator"]
        was_training = disc.training
        disc.eval()
        correct = (disc(source_features).squeeze(1) < 0).float().sum() + (disc(target_features).squeeze(1) >= 0).float().sum()
        disc.train(was_training)
        return {"domain_accuracy": (correct / (len(source_features) + len(target_features))).item()}
