"""Typed configs: range validation (NaN and infinities included) and result keys."""
import dataclasses
import math

import pytest
import torch

from tlcore.api import result_key
from tlcore.config import RESULT_MODES, RunConfig, result_fields
from tlcore.device import compute_precision
from tlcore.errors import ConfigError
from tlcore.train import Trainer

from helpers import fast_config


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["lr", "weight_decay"])
def test_non_finite_floats_are_refused_where_a_range_is_checked(name, value):
    with pytest.raises(ConfigError, match=f"{name}=.* must be a finite number between"):
        RunConfig(**{name: value})


@pytest.mark.parametrize("params", [{"weight": math.nan}, {"gamma": math.inf}, {"weight": -math.inf}])
def test_non_finite_strategy_parameters_are_refused(params):
    (name,) = params
    with pytest.raises(ConfigError, match=f"{name}=.* must be a finite number"):
        Trainer(fast_config(strategy="dann", params=params))


def test_a_strategy_without_settings_says_so():
    with pytest.raises(ConfigError, match="takes no settings"):
        Trainer(fast_config(strategy="source_only", params={"weight": 1.0}))


# --------------------------------------------------------------------------- result keys
# Golden keys: result_key of fixed configs. If one of these changes, every stored run's key
# changes with it and no stored baseline or sweep point is reused any more. A new RunConfig
# field that changes results must be declared result=UNLESS_DEFAULT (or False) to keep them.
GOLDEN = [
    (RunConfig(), "a4f3424cebf8ec95"),
    (RunConfig(batch_size_auto=False, device="cpu", strategy="mmd", params={"weight": 2.0}), "9e55e8e284a04a94"),
    (RunConfig(source="digits", target="digits:invert", target_labels=3, strategy="finetune", amp=False,
               threads=3), "236b910303461741"),
]


@pytest.mark.parametrize("config,key", GOLDEN)
def test_result_key_is_pinned(config, key):
    assert result_key(config, precision="fp32") == key
    assert result_key(config.replace(device="cpu")) == key  # a CPU computes in fp32


def test_fields_marked_not_result_leave_the_key_alone():
    base = RunConfig(device="cpu")
    not_result = {f.name for f in dataclasses.fields(RunConfig) if f.metadata["result"] is False}
    assert not_result == {"device", "threads", "log_every", "evals_per_epoch", "data_dir", "data_mode",
                          "loader_workers"}
    changed = dict(threads=4, log_every=3, evals_per_epoch=2, data_dir="/elsewhere", data_mode="stream",
                   loader_workers=0)
    assert set(changed) | {"device"} == not_result
    for name, value in changed.items():
        assert result_key(base.replace(**{name: value})) == result_key(base), name


def test_fields_that_change_the_result_change_the_key():
    base = RunConfig(device="cpu")
    for change in (dict(seed=1), dict(lr=1e-3), dict(epochs=2), dict(target="moons:rotate=40"),
                   dict(params={"weight": 0.5}), dict(amp=False), dict(batch_size_auto=False)):
        assert result_key(base.replace(**change)) != result_key(base), change


def test_every_field_declares_a_result_mode():
    for f in dataclasses.fields(RunConfig):
        assert f.metadata["result"] in RESULT_MODES, f.name


def test_precision_is_in_the_key_and_the_device_name_is_not():
    config = RunConfig()
    fp32 = result_key(config, precision="fp32")
    assert result_key(config, precision="bf16") != fp32 != result_key(config, precision="fp16")
    assert result_fields(config, "bf16")["precision"] == "bf16" and "precision" not in result_fields(config)
    assert "device" not in result_fields(config.replace(device="cuda:1"), "bf16")


def test_compute_precision():
    assert compute_precision(torch.device("cpu"), amp=True) == "fp32"
    if torch.cuda.is_available():
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert compute_precision(torch.device("cuda"), amp=True) == expected
        assert compute_precision(torch.device("cuda"), amp=False) == "fp32"
