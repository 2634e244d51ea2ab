"""MCC: minimise the class confusion of the classifier's target predictions (Jin et al., ECCV 2020)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import spec
from ..losses import mcc_loss
from .base import Phase, Strategy, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class MCCConfig:
    weight: float = spec(1.0, "weight of the class-confusion term against the task loss", 0.0, 100.0)
    temperature: float = spec(2.5, "temperature T that softens the target predictions before the confusion "
                                   "matrix (the paper's 2.5)", 0.1, 20.0)


class MCC(Strategy):
    name = "mcc"
    summary = ("Minimum Class Confusion: penalise target predictions that confuse classes with each other, "
               "weighting confident examples more (Jin et al., ECCV 2020).")
    Config = MCCConfig

    def phases(self, ctx):
        p: MCCConfig = self.params
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            return {"task": task_loss(out, batch, supervised),
                    "mcc": mcc_loss(out["target"][1], p.temperature)}
        return [Phase("adapt", streams, losses)]

    def weights(self, ctx):
        return {"mcc": self.params.weight}
