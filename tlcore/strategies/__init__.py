"""The strategy registry: one explicit dict, one contract test over every entry."""
from __future__ import annotations

from .alignment import MMD, Coral
from .base import Phase, Strategy
from .baselines import Oracle, SourceOnly, TargetOnly
from .dann import DANN
from .finetune import Finetune
from .importance import ImportanceWeighting

STRATEGIES: dict[str, type[Strategy]] = {
    "target_only": TargetOnly,
    "source_only": SourceOnly,
    "finetune": Finetune,
    "mmd": MMD,
    "coral": Coral,
    "dann": DANN,
    "importance_weighting": ImportanceWeighting,
    "oracle": Oracle,
}

__all__ = ["STRATEGIES", "Strategy", "Phase"]
