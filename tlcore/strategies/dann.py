"""DANN: a domain discriminator behind a gradient-reversal layer (Ganin et al., JMLR 2016)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import UNLESS_DEFAULT, spec
from ..losses import DomainAdversarialLoss, dann_lambda
from .base import Strategy, Phase, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class DANNConfig:
    weight: float = spec(1.0, "largest gradient-reversal coefficient, reached by the end of the ramp", 0.0, 10.0)
    gamma: float = spec(10.0, "steepness of the ramp 2/(1+exp(-γp))-1 over training progress p", 0.0, 100.0)
    hidden: int = spec(64, "hidden units of the two-layer domain discriminator (the paper's: 500 or 1024)", 4, 4096)
    dropout: float = spec(0.0, "dropout after each hidden layer of the discriminator (the paper's: 0.5)",
                          0.0, 0.9, result=UNLESS_DEFAULT)


def discriminator(features: int, hidden: int, dropout: float = 0.0) -> nn.Sequential:
    """DANN's domain classifier: two hidden ReLU layers (each followed by dropout when ``dropout`` > 0,
    as in Ganin et al., JMLR 2016) and one logit (target = 1). At ``dropout=0`` it is exactly the
    module this strategy always built (same layers, same initialisation draws)."""
    layers: list[nn.Module] = []
    for n_in in (features, hidden):
        layers += [nn.Linear(n_in, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, 1))


class DANN(Strategy):
    name = "dann"
    summary = ("Adversarial alignment: a domain discriminator learns to tell source from target while a "
               "gradient-reversal layer trains the features to fool it (Ganin et al., JMLR 2016).")
    Config = DANNConfig

    def extra_modules(self, ctx):
        return nn.ModuleDict({"discriminator": discriminator(ctx.model.feature_dim, self.params.hidden,
                                                             self.params.dropout)})

    def notes(self, ctx):
        p = self.params
        drop = f", dropout {p.dropout:g}" if p.dropout else ""
        return [f"dann: discriminator {ctx.model.feature_dim}-{p.hidden}-{p.hidden}-1 (ReLU{drop}); "
                f"reversal coefficient {p.weight:g}·(2/(1+exp(-{p.gamma:g}p))-1)"]

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
