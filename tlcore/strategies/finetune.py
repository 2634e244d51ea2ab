"""Pretrain on the source, then fine-tune on the labelled target."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import spec
from .base import Strategy, cross_entropy_phase


@dataclass(frozen=True)
class FinetuneConfig:
    freeze_depth: int = spec(0, "feature blocks frozen from the input during fine-tuning "
                                "(0 = none, -1 = all: a linear probe on the source features)", -1, 64)
    pretrain_share: float = spec(0.5, "fraction of the step budget spent pretraining on the source", 0.05, 0.95)
    finetune_lr_scale: float = spec(0.1, "fine-tuning learning rate as a multiple of lr (a smaller rate "
                                         "than pretraining is common practice: it keeps what the source taught)",
                                    1e-3, 10.0)
    reset_head: bool = spec(False, "re-initialise the classifier head before fine-tuning")


class Finetune(Strategy):
    name = "finetune"
    summary = ("Pretrain on the source, then fine-tune on the k labelled target examples; "
               "freezing every feature block makes it a linear probe (feature extraction).")
    Config = FinetuneConfig
    streams = frozenset({"source", "target_labelled"})
    needs_target_labels = True

    def phases(self, ctx):
        p: FinetuneConfig = self.params

        def start_finetune(c):
            c.model.freeze(p.freeze_depth)
            if p.reset_head:
                for m in c.model.head.modules():
                    if isinstance(m, nn.Linear):
                        m.reset_parameters()

        return [
            cross_entropy_phase("pretrain", ("source",), share=p.pretrain_share),
            cross_entropy_phase("finetune", ("target_labelled",), share=1.0 - p.pretrain_share,
                                lr_scale=p.finetune_lr_scale, on_start=start_finetune),
        ]
