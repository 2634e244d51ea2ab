"""One contract test over every registered strategy, on 2-D and image data."""
import dataclasses
import math

import pytest

from tlcore import events as ev
from tlcore.config import form_fields
from tlcore.strategies import STRATEGIES
from tlcore.train import Trainer

from helpers import fast_config

PAIRS = {
    "vector": dict(source="moons", target="moons:rotate=30"),
    "image": dict(source="digits", target="digits:invert"),
}


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_contract(name, kind):
    cls = STRATEGIES[name]
    # The declared interface: a one-line summary and a typed, defaulted config.
    assert cls.name == name and cls.summary and "\n" not in cls.summary
    assert dataclasses.is_dataclass(cls.Config)
    for f in form_fields(cls.Config):
        assert f.help, f"{name}.{f.name} needs a help line for the app's form"

    k = 2 if cls.needs_target_labels or name in ("mmd", "dann") else 0
    config = fast_config(strategy=name, target_labels=k, **PAIRS[kind])
    trainer = Trainer(config)
    events = list(trainer.run())

    assert isinstance(events[0], ev.RunStarted)
    assert isinstance(events[-1], ev.ResultEvent) and events[-1].status == "done"
    steps = [e for e in events if isinstance(e, ev.StepEvent)]
    evals = [e for e in events if isinstance(e, ev.EvalEvent)]
    assert steps and evals
    assert steps[-1].step == events[0].total_steps == events[-1].steps
    assert [e.step for e in steps] == sorted(e.step for e in steps)
    for e in steps:
        assert "total" in e.losses and "task" in e.losses
        assert all(math.isfinite(v) for v in e.losses.values()), e.losses
        assert all(isinstance(v, float) for v in e.losses.values())
    result = events[-1]
    assert 0.0 <= result.target_accuracy <= 1.0 and 0.0 <= result.source_accuracy <= 1.0
    assert len(result.target_per_class_accuracy) == len(trainer.pair.class_names)
    # Every event survives the JSON round trip the run store uses.
    for e in events:
        assert ev.from_dict(ev.to_dict(e)) == e


def test_alignment_terms_are_reported():
    expected = {"mmd": "mmd", "coral": "coral", "dann": "domain"}
    for name, term in expected.items():
        events = list(Trainer(fast_config(strategy=name)).run())
        steps = [e for e in events if isinstance(e, ev.StepEvent)]
        assert term in steps[-1].losses, (name, steps[-1].losses)


def test_dann_reports_ramp_and_domain_accuracy():
    events = list(Trainer(fast_config(strategy="dann", epochs=2)).run())
    coeffs = [e.extras["grl_coeff"] for e in events if isinstance(e, ev.StepEvent)]
    assert coeffs == sorted(coeffs) and coeffs[0] < coeffs[-1] <= 1.0
    assert 0.0 <= events[-1].extras["domain_accuracy"] <= 1.0


def test_finetune_runs_two_phases_and_freezes():
    config = fast_config(strategy="finetune", target_labels=3, params={"freeze_depth": -1})
    trainer = Trainer(config)
    events = list(trainer.run())
    phases = [e.phase for e in events if isinstance(e, ev.StepEvent)]
    assert phases[0] == "pretrain" and phases[-1] == "finetune"
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}


def test_importance_weights_are_returned_normalised_and_clipped():
    config = fast_config(strategy="importance_weighting", source="blobs", target="blobs:bias=3",
                         params={"clip": 5.0})
    trainer = Trainer(config)
    list(trainer.run())
    w = trainer.artifacts()["importance_weights"]
    assert len(w) == len(trainer.pair.source.y_train)
    assert abs(sum(w) / len(w) - 1.0) < 1e-4
    assert max(w) <= 5.0 + 1e-4 and min(w) >= 0.0
    assert max(w) / (min(w) + 1e-9) > 2.0  # a real covariate shift gives unequal weights


def test_strategies_needing_labels_refuse_zero_budget():
    from tlcore.errors import ConfigError
    for name, cls in STRATEGIES.items():
        if cls.needs_target_labels:
            with pytest.raises(ConfigError, match="target_labels"):
                Trainer(fast_config(strategy=name, target_labels=0))
