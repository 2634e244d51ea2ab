"""The strategy registry: one explicit dict, one contract test over every entry."""
from __future__ import annotations

from .adabn import AdaBN
from .alignment import MMD, Coral
from .base import ROLES, Phase, Strategy
from .baselines import Oracle, SourceOnly, TargetOnly
from .cdan import CDAN
from .dann import DANN
from .finetune import Finetune
from .gromov import Gromov
from .importance import ImportanceWeighting
from .jdot import JDOT
from .mcc import MCC
from .rkd import RKD
from .self_training import SelfTraining

STRATEGIES: dict[str, type[Strategy]] = {
    "target_only": TargetOnly,
    "source_only": SourceOnly,
    "finetune": Finetune,
    "mmd": MMD,
    "coral": Coral,
    "dann": DANN,
    "importance_weighting": ImportanceWeighting,
    "jdot": JDOT,
    "rkd": RKD,
    "mcc": MCC,
    "gromov": Gromov,
    "adabn": AdaBN,
    "self_training": SelfTraining,
    "cdan": CDAN,
    "oracle": Oracle,
}



def with_role(role: str) -> list[str]:
    """The registered strategies of ``role`` (baseline, transfer or reference), in registry order."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return [name for name, cls in STRATEGIES.items() if cls.role == role]


def uses_source(name: str) -> bool:
    """Whether strategy ``name`` trains on the source (every role but reference)."""
    return STRATEGIES[name].uses_source()


def heterogeneous_strategies() -> list[str]:
    """Strategies that accept a heterogeneous pair (domains in different input spaces), in registry order."""
    return [name for name, cls in STRATEGIES.items() if cls.heterogeneous]


def adaptation_strategies() -> list[str]:
    """Transfer strategies that use the unlabelled target inputs (domain adaptation proper)."""
    return [name for name in with_role("transfer") if STRATEGIES[name].adapts()]


__all__ = ["STRATEGIES", "ROLES", "Strategy", "Phase", "with_role", "uses_source", "adaptation_strategies",
           "heterogeneous_strategies"]
