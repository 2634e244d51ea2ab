"""One contract test over every registered strategy, on 2-D and image data."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from tlcore import events as ev
from tlcore.config import form_fields
from tlcore.errors import RepresentationMismatchError
from tlcore.strategies import ROLES, STRATEGIES
from tlcore.strategies.base import STREAMS
from tlcore.strategies.importance import density_ratio_weights, normalised_weights
from tlcore.train import Trainer

from helpers import fast_config

LEARNS = 0.75  # target accuracy that counts as learning the easy pair (chance: 0.5)

PAIRS = {
    "vector": dict(source="moons", target="moons:rotate=30"),
    "image": dict(source="digits", target="digits:invert"),
    # 2-D source, 20-D target: only strategies that declare `heterogeneous` may take it.
    "heterogeneous": dict(source="blobs:prior=5", target="blobs:prior=5,embed=20"),
}


def _label_budget(cls) -> int:
    return 2 if cls.needs_target_labels or cls.name in ("mmd", "dann") else 0


def _check_one_step_per_phase(config):
    """(a) every phase draws only declared streams; (b) one step of each phase: every loss term
    is attached to the graph and reaches a trainable parameter, and every parameter the phase
    trains (model and extra modules, as the loop's optimiser collects them) gets a gradient."""
    trainer = Trainer(config)
    cls, ctx = type(trainer.strategy), trainer.ctx
    assert set(cls.streams) <= set(STREAMS), cls.streams
    trainer.strategy.prepare(ctx)
    generator = torch.Generator().manual_seed(0)
    for phase in trainer.phases:
        assert set(phase.streams) <= cls.streams, (cls.name, phase.name, phase.streams, cls.streams)
        if phase.on_start is not None:
            phase.on_start(ctx)
        named = [(n, p) for n, p in list(trainer.model.named_parameters()) + list(ctx.modules.named_parameters())
                 if p.requires_grad]
        assert named, (cls.name, phase.name, "nothing to train")
        params = [p for _, p in named]
        batch = next(trainer.batches.steps(phase.streams, 1, config.batch_size, generator))
        terms = phase.losses(batch, ctx)
        assert terms and "task" in terms, (cls.name, phase.name, list(terms))
        for name, term in terms.items():
            assert term.requires_grad, f"{cls.name}/{phase.name}: loss term {name!r} is detached from the graph"
            grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
            assert any(g is not None and g.abs().sum() > 0 for g in grads), \
                f"{cls.name}/{phase.name}: loss term {name!r} reaches no trainable parameter"
        weights = trainer.strategy.weights(ctx)
        total = sum(weights.get(name, 1.0) * term for name, term in terms.items())
        grads = torch.autograd.grad(total, params, allow_unused=True)
        missing = [n for (n, _), g in zip(named, grads) if g is None]
        assert not missing, f"{cls.name}/{phase.name}: no gradient reaches {missing}"
    trainer.release_workers()


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_contract(name, kind):
    cls = STRATEGIES[name]
    # The declared interface: a one-line summary, a role and a typed, defaulted config.
    assert cls.name == name and cls.summary and "\n" not in cls.summary
    assert cls.role in ROLES
    assert dataclasses.is_dataclass(cls.Config)
    for f in form_fields(cls.Config):
        assert f.help, f"{name}.{f.name} needs a help line for the app's form"

    config = fast_config(strategy=name, target_labels=_label_budget(cls), **PAIRS[kind])
    if kind == "heterogeneous" and not cls.heterogeneous:
        with pytest.raises(RepresentationMismatchError, match="strategy that accepts heterogeneous pairs"):
            Trainer(config)
        return
    _check_one_step_per_phase(config)
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


# (c) Every strategy learns: well above chance (0.5) on the target of an easy pair in a few
# epochs. A detached loss term or a discriminator without gradients can pass the plumbing above
# and still not learn; what a strategy trains on (source, labelled target or both) decides the
# budget, so every strategy gets 5 labels per class.
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_learns_an_easy_pair(name):
    config = fast_config(strategy=name, source="moons", target="moons:rotate=10", target_labels=5, epochs=3)
    result = list(Trainer(config).run())[-1]
    assert result.target_accuracy > LEARNS, (name, result.target_accuracy, result.source_accuracy)


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
