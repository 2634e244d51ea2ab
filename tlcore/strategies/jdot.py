"""DeepJDOT: align source and target by a minibatch optimal-transport plan over features and
labels (Damodaran et al., ECCV 2018)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import spec
from ..losses import jdot_loss
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class JDOTConfig:
    weight: float = spec(1.0, "weight of the JDOT transport term against the source cross-entropy", 0.0, 100.0)
    alpha: float = spec(0.1, "α: weight of the squared feature distance in the joint transport cost", 0.0, 100.0)
    lambda_t: float = spec(1.0, "λ_t: weight of the target classifier's cross-entropy with the source label "
                                "in the joint transport cost", 0.0, 100.0)


class JDOT(Strategy):
    name = "jdot"
    summary = ("DeepJDOT: each step, an exact optimal-transport plan (POT's ot.emd) pairs source and target "
               "examples by feature distance and label fit, and the features and classifier learn to make the "
               "pairs agree (Damodaran et al., ECCV 2018).")
    Config = JDOTConfig

    def phases(self, ctx):
        p: JDOTConfig = self.params
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            (fs, _), (ft, logits_t) = out["source"], out["target"]
            alignment, _plan = jdot_loss(fs, ft, batch["source"].y, logits_t, p.alpha, p.lambda_t)
            return {"task": task_loss(out, batch, supervised), "jdot": alignment}
        return [Phase("adapt", streams, losses)]

    def weights(self, ctx):
        return {"jdot": self.params.weight}
