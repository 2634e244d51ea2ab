"""tlcore.summary: mean and spread of a metric by strategy, with the negative-transfer gap."""
from dataclasses import dataclass, field

import pytest

from tlcore.summary import summarise_by_strategy


@dataclass
class Run:
    strategy: str
    seed: int
    metrics: dict = field(default_factory=dict)


def test_groups_by_strategy_in_registry_order_with_sample_std():
    runs = [Run("dann", 0, {"target_accuracy": 0.7}), Run("source_only", 0, {"target_accuracy": 0.5}),
            Run("dann", 1, {"target_accuracy": 0.9}), Run("dann", 2, {"target_accuracy": 0.8})]
    out = summarise_by_strategy(runs)
    assert [s.strategy for s in out] == ["source_only", "dann"]
    dann = out[1]
    assert dann.runs == 3 and dann.seeds == (0, 1, 2)
    assert dann.mean == pytest.approx(0.8) and dann.std == pytest.approx(0.1)
    assert out[0].std is None  # one run has no spread (None, not 0.0)
    assert out[0].ntg_mean is None and out[0].ntg_runs == 0


def test_ntg_over_the_runs_that_have_one_and_skips_runs_without_the_metric():
    runs = [Run("finetune", 0, {"target_accuracy": 0.4, "ntg": 0.2}),
            Run("finetune", 1, {"target_accuracy": 0.5}),
            Run("finetune", 2, {"target_accuracy": 0.6, "ntg": 0.0}),
            Run("mmd", 0, {"source_accuracy": 0.9}),           # no target accuracy: not counted
            Run("mmd", 1, {"target_accuracy": float("nan")})]  # not finite: not counted
    (finetune,) = summarise_by_strategy(runs)
    assert finetune.runs == 3 and finetune.ntg_runs == 2
    assert finetune.ntg_mean == pytest.approx(0.1) and finetune.ntg_std == pytest.approx(0.1414, abs=1e-4)


def test_other_metrics_and_unknown_strategies():
    runs = [Run("zz_custom", 0, {"source_accuracy": 0.3}), Run("oracle", 0, {"source_accuracy": 0.9})]
    out = summarise_by_strategy(runs, metric="source_accuracy")
    assert [s.strategy for s in out] == ["oracle", "zz_custom"]
