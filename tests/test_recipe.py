"""Optimisation recipes (issue 10): DANN's schedules against known values, the optimiser a config
names, the recipe in every run's record, and the result keys of default configs left alone."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tlcore.api import result_key, run_experiment
from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.losses import dann_lambda
from tlcore.runs import RunStore
from tlcore.strategies.dann import discriminator
from tlcore.train import Trainer, annealed_lr_factor, make_optimizer

from helpers import fast_config


def test_annealed_rate_at_the_ends_of_training():
    # mu_p = mu_0 / (1 + 10 p)^0.75 (Ganin et al., JMLR 2016): 1 at p = 0, 11^-0.75 at p = 1
    assert annealed_lr_factor(0.0) == 1.0
    assert annealed_lr_factor(1.0) == pytest.approx(0.165560, abs=1e-6)
    assert annealed_lr_factor(0.5) == pytest.approx(6.0 ** -0.75)


def test_reversal_ramp_at_the_ends_of_training():
    # lambda_p = 2 / (1 + exp(-10 p)) - 1: 0 at p = 0, 0.99991 at p = 1
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.999909, abs=1e-6)


def test_the_config_names_the_optimiser():
    params = [nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(params, RunConfig(optimizer="sgd", momentum=0.9, weight_decay=1e-3), 0.01)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["weight_decay"] == 1e-3
    assert isinstance(make_optimizer(params, RunConfig(), 0.01), torch.optim.Adam)
    with pytest.raises(ConfigError, match="optimizer='rmsprop' is not one of"):
        RunConfig(optimizer="rmsprop")


def test_the_recipe_is_recorded_and_trains_differently():
    store = RunStore()
    config = fast_config(strategy="dann", optimizer="sgd", lr=0.01, lr_schedule="anneal",
                         params={"dropout": 0.5, "hidden": 32})
    out = run_experiment(config, store=store, with_baseline=False)
    lines = out.metrics["preprocessing"]
    recipe = [line for line in lines if line.startswith("recipe:")]
    assert recipe == [f"recipe: SGD, momentum 0.9, lr 0.01 (annealed lr / (1 + 10p)^0.75 over progress p), "
                      f"batch {config.batch_size} per stream, {config.epochs} epochs"]
    assert any("discriminator" in line and "dropout 0.5" in line for line in lines)
    stored = store.get_run(out.run_id).config
    assert stored["optimizer"] == "sgd" and stored["momentum"] == 0.9 and stored["params"]["dropout"] == 0.5
    adam = run_experiment(config.replace(optimizer="adam"), store=store, with_baseline=False)
    assert adam.metrics["target_accuracy"] != out.metrics["target_accuracy"] or \
        adam.metrics["source_accuracy"] != out.metrics["source_accuracy"]


def test_new_recipe_fields_at_their_defaults_keep_the_key():
    base = RunConfig(device="cpu")
    explicit = base.replace(optimizer="adam", momentum=0.9)
    assert result_key(explicit) == result_key(base)
    dann = base.replace(strategy="dann", params={"weight": 1.0})
    assert result_key(dann.replace(params={"weight": 1.0, "dropout": 0.0})) == result_key(dann)
    for change in (dict(optimizer="sgd"), dict(momentum=0.5), dict(params={"dropout": 0.5})):
        assert result_key(base.replace(**change)) != result_key(base), change


def test_the_discriminator_without_dropout_is_the_old_one():
    torch.manual_seed(0)
    old = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    torch.manual_seed(0)
    new = discriminator(8, 16)
    assert [type(m) for m in new] == [type(m) for m in old]
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    assert sum(isinstance(m, nn.Dropout) for m in discriminator(8, 16, 0.5)) == 2


@pytest.mark.parametrize("layers,head_moves", [("features", False), ("features+outputs", True)])
def test_mmd_on_features_and_outputs_reaches_the_classifier(layers, head_moves):
    # DAN aligns the classifier's layers too: with features+outputs the MMD term trains the head.
    trainer = Trainer(fast_config(strategy="mmd", params={"layers": layers}))
    phase = trainer.phases[0]
    batch = next(trainer.batches.steps(phase.streams, 1, 64, torch.Generator().manual_seed(0)))
    mmd = phase.losses(batch, trainer.ctx)["mmd"]
    assert torch.isfinite(mmd)
    mmd.backward()
    head = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                      for p in trainer.model.head.parameters()])
    assert bool(head.abs().sum() > 0) is head_moves


def test_the_mmd_layers_default_keeps_the_key():
    base = RunConfig(device="cpu", strategy="mmd", params={"weight": 2.0})
    assert result_key(base.replace(params={"weight": 2.0, "layers": "features"})) == result_key(base)
    assert result_key(base.replace(params={"weight": 2.0, "layers": "features+outputs"})) != result_key(base)
