"""tlcore.inspection: domain gaps, point clouds, examples per class, decision grids, trained runs."""
import numpy as np
import pytest
import torch

from tlcore.api import load_trained, run_experiment
from tlcore.config import RunConfig
from tlcore.data import make_pair
from tlcore.inspection import (class_examples, decision_grid, domain_gap, find_source_only, grid_bounds,
                               input_cloud, input_gap, inspect_trainer, source_only_config)
from tlcore.runs import RunStore

from helpers import fast_config


def test_domain_gap_is_small_for_one_distribution_and_large_for_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 5, generator=g), torch.randn(300, 5, generator=g)
    same = domain_gap(a, b, seed=0, num_permutations=100)
    shifted = domain_gap(a, b + 2.0, seed=0, num_permutations=100)
    assert abs(same.mmd2) < 0.02 and 0 < same.p_value <= 1 and same.pad < 0.5
    assert shifted.mmd2 > 0.1 and shifted.p_value < 0.02 and shifted.pad > 1.5
    assert shifted.p_value == pytest.approx(1 / 101)  # no permutation reaches the observed statistic
    assert (same.n_source, same.n_target) == (300, 300)


def test_domain_gap_subsamples_and_skips_the_test_when_asked():
    x = torch.randn(900, 3)
    gap = domain_gap(x, x + 1, max_points=200, num_permutations=0)
    assert gap.p_value is None and (gap.n_source, gap.n_target) == (200, 200)
    assert domain_gap(x, x + 1, max_points=200, num_permutations=0) == gap  # seeded


def test_input_gap_and_cloud_of_an_image_pair():
    pair = make_pair("digits", "digits:invert", seed=0)
    gap = input_gap(pair, max_points=200, num_permutations=50)
    assert gap.pad > 1.5 and gap.p_value < 0.05
    cloud = input_cloud(pair, max_points=100)
    assert cloud.points.shape == (200, 2) and cloud.points.dtype == np.float32
    assert set(cloud.domain.tolist()) == {0, 1}
    # each point traces back to its input
    row = 150
    assert cloud.label[row] == pair.target.y_train[cloud.index[row]].item()


def test_input_cloud_keeps_2d_inputs_as_they_are():
    pair = make_pair("moons", "moons:rotate=30", seed=0)
    cloud = input_cloud(pair, max_points=50, split="test")
    np.testing.assert_allclose(cloud.points[:50], pair.source.x_test[cloud.index[:50]].numpy())


def test_class_examples_draws_from_each_class():
    y = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1])
    rows = class_examples(y, 4, per_class=2, seed=0)
    assert len(rows) == 4 and rows[3] == []
    for c, idx in enumerate(rows[:3]):
        assert len(idx) == 2 and all(y[i] == c for i in idx) and idx == sorted(idx)
    assert class_examples(y, 4, per_class=2, seed=0) == rows


def test_decision_grid_of_a_known_model():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    grid = decision_grid(model, (-1.0, 1.0, -2.0, 2.0), resolution=11)
    assert grid.proba.shape == (11, 11, 2) and grid.predicted.shape == (11, 11)
    assert grid.xs[0] == -1.0 and grid.ys[-1] == 2.0
    assert (grid.predicted[:, grid.xs > 0] == 1).all() and (grid.predicted[:, grid.xs < 0] == 0).all()
    np.testing.assert_allclose(grid.proba.sum(axis=2), 1.0, rtol=1e-5)
    with pytest.raises(ValueError):
        grid_bounds(torch.zeros(4, 3))


def test_inspect_a_trained_run_and_find_its_source_only_baseline():
    store = RunStore()
    config = fast_config(strategy="importance_weighting")
    run_id = run_experiment(config, store=store).run_id
    trainer, artifacts = load_trained(run_id, store)
    ins = inspect_trainer(trainer, artifacts, max_points=300)
    assert ins.features.shape[0] == len(ins.domain) == len(ins.label) == len(ins.prediction) == 600
    assert ins.confusion.sum() == len(trainer.pair.target.y_test)
    assert ins.target_accuracy == pytest.approx(np.trace(ins.confusion) / ins.confusion.sum())
    assert ins.grid is not None and ins.grid.proba.shape[2] == 2
    assert ins.importance_weights.shape == (len(trainer.pair.source.y_train),)
    assert ins.gap.p_value is None and ins.gap.pad >= 0

    stored = RunConfig.from_dict(store.get_run(run_id).config)
    assert source_only_config(stored).strategy == "source_only" and source_only_config(stored).params == {}
    assert find_source_only(store, stored) is None
    base_id = run_experiment(source_only_config(config), store=store).run_id
    assert find_source_only(store, stored).id == base_id
