"""Typed configs: range validation (NaN and infinities included)."""
import math

import pytest

from tlcore.config import RunConfig
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
