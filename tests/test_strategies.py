"""One contract test over every registered strategy, on 2-D and image data."""
import dataclasses
import math

import numpy as np
import pytest

from tlcore import events as ev
from tlcore.config import form_fields
from tlcore.errors import RepresentationMismatchError
from tlcore.strategies import STRATEGIES
from tlcore.strategies.importance import density_ratio_weights, normalised_weights
from tlcore.train import Trainer

from helpers import fast_config

PAIRS = {
    "vector": dict(source="moons", target="moons:rotate=30"),
    "image": dict(source="digits", target="digits:invert"),
    # 2-D source, 20-D target: only strategies that declare `heterogeneous` may take it.
    "heterogeneous": dict(source="blobs:prior=5", target="blobs:prior=5,embed=20"),
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
    if kind == "heterogeneous" and not cls.heterogeneous:
        with pytest.raises(RepresentationMismatchError, match="strategy that accepts heterogeneous pairs"):
            Trainer(config)
        return
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
    assert 0.0 <= result.target_accuracy <= 1.0
    if kind == "heterogeneous":  # the model takes target inputs only: no source accuracy
        assert math.isnan(result.source_accuracy)
    else:
        assert 0.0 <= result.source_accuracy <= 1.0
    assert len(result.target_per_class_accuracy) == len(trainer.pair.class_names)
    # Every event survives the JSON round trip the run store uses (NaN compared as text).
    for e in events:
        assert repr(ev.from_dict(ev.to_dict(e))) == repr(e)


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


def test_importance_weights_are_returned_normalised_and_bounded_by_a_binding_clip():
    # With blobs the unclipped weights reach ~15 times the mean; clip=2 binds (before the fix,
    # clipping then renormalising gave a largest weight of 2.235).
    config = fast_config(strategy="importance_weighting", source="blobs", target="blobs:bias=3",
                         params={"clip": 2.0})
    trainer = Trainer(config)
    list(trainer.run())
    w = trainer.artifacts()["importance_weights"]
    assert len(w) == len(trainer.pair.source.y_train)
    assert abs(sum(w) / len(w) - 1.0) < 1e-4
    assert max(w) == pytest.approx(2.0, abs=1e-5) and min(w) >= 0.0  # the clip binds, and holds
    assert max(w) / (min(w) + 1e-9) > 2.0  # a real covariate shift gives unequal weights


def _clip_by_iteration(w, clip, rounds=100_000):
    """Slow plain reference: clip at ``clip`` and renormalise to mean 1, until the bound holds."""
    w = w / w.mean()
    for _ in range(rounds):
        if w.max() <= clip * (1 + 1e-9):
            return w
        w = np.minimum(w, clip)
        w = w / w.mean()
    raise AssertionError("did not converge")


@pytest.mark.parametrize("clip", [1.0, 1.5, 2.0, 5.0, 50.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_normalised_weights_hold_the_bound_and_match_the_iterated_reference(clip, seed):
    rng = np.random.default_rng(seed)
    p_target = rng.beta(0.5, 2.0, size=500)  # a skewed spread of odds, a few very large
    w = normalised_weights(p_target, prior_ratio=0.7, clip=clip)
    assert w.dtype == np.float32 and abs(w.mean() - 1.0) < 1e-5 and w.max() <= clip * (1 + 1e-5)
    odds = p_target / (1 - p_target)
    np.testing.assert_allclose(w, _clip_by_iteration(odds, clip), rtol=1e-4, atol=1e-6)
    below = w < w.max() * (1 - 1e-4)  # the weights under the cap keep their ratios to each other
    if below.any():
        ratio = w[below] / odds[below]
        assert np.allclose(ratio, ratio[0], rtol=1e-4)
    if clip == 1.0:
        assert np.allclose(w, 1.0)


def _rotated_moons(rotate=90):
    from tlcore.data import make_pair
    from tlcore.data.domain import as_float
    pair = make_pair("moons", f"moons:rotate={rotate}", seed=0)
    return as_float(pair.source.x_train).numpy(), as_float(pair.target.x_train).numpy()


def test_a_non_linear_domain_classifier_sees_a_rotation_a_linear_one_cannot():
    # The moons rotated about their centre keep their mean and covariance up to a rotation:
    # a logistic domain classifier is at chance and every weight is about 1.
    xs, xt = _rotated_moons()
    linear, linear_acc = density_ratio_weights(xs, xt, clip=10.0, C=1.0, max_dims=64, seed=0, classifier="logistic")
    mlp, mlp_acc = density_ratio_weights(xs, xt, clip=10.0, C=1.0, max_dims=64, seed=0, classifier="mlp")
    assert linear_acc < 0.56 and linear.std() < 0.1
    assert mlp_acc > 0.65 and mlp.std() > 0.4 and mlp.max() / mlp.min() > 10


def test_an_injected_scikit_learn_classifier_is_used_and_left_unfitted():
    from sklearn.neighbors import KNeighborsClassifier
    xs, xt = _rotated_moons()
    knn = KNeighborsClassifier(n_neighbors=50)
    w, acc = density_ratio_weights(xs, xt, clip=10.0, C=1.0, max_dims=64, seed=0, classifier=knn)
    assert acc > 0.65 and w.std() > 0.4 and abs(w.mean() - 1.0) < 1e-5
    assert not hasattr(knn, "classes_")  # cloned, never fitted in place


def test_the_domain_classifier_is_a_strategy_setting():
    config = fast_config(strategy="importance_weighting", target="moons:rotate=90",
                         params={"classifier": "gradient_boosting"})
    trainer = Trainer(config)
    events = list(trainer.run())
    assert events[-1].extras["domain_classifier_accuracy"] > 0.7
    assert events[-1].extras["effective_sample_fraction"] < 0.9


def test_strategies_needing_labels_refuse_zero_budget():
    from tlcore.errors import ConfigError
    for name, cls in STRATEGIES.items():
        if cls.needs_target_labels:
            with pytest.raises(ConfigError, match="target_labels"):
                Trainer(fast_config(strategy=name, target_labels=0))
