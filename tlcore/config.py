"""Typed run configuration.

:class:`RunConfig` is a frozen dataclass whose fields carry their valid range
and a help line in ``metadata``; :func:`form_fields` turns any such dataclass
(the run config or a strategy's ``Config``) into a list of field descriptions
from which the app builds its forms. Every run record stores the resolved
config (:meth:`RunConfig.to_dict`), strategy hyperparameters included.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, get_type_hints

from .errors import ConfigError


# How a field enters the result key (:func:`result_fields`), declared next to the field:
#   True:   it changes what a run computes (the default: every strategy hyperparameter);
#   False:  it changes how a run is observed, scheduled or where it reads from, not its numbers;
#   UNLESS_DEFAULT: it changes the result, but at its default it is left out of the key, so that
#           adding such a field keeps the keys of every run stored before it existed.
UNLESS_DEFAULT = "unless_default"
RESULT_MODES = (True, False, UNLESS_DEFAULT)


def spec(default: Any, help: str, lo: float | None = None, hi: float | None = None,
         choices: tuple | None = None, advanced: bool = False, result: bool | str = True):
    """A dataclass field with its range, choices, help line and result mode in metadata
    (``result``: whether it changes what a run computes; see :data:`RESULT_MODES`)."""
    if result not in RESULT_MODES:
        raise ValueError(f"result={result!r} is not one of {RESULT_MODES}")
    meta = {"help": help, "min": lo, "max": hi, "choices": choices, "advanced": advanced, "result": result}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldInfo:
    """One form field: what the app needs to draw a widget for it."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple | None
    advanced: bool


def form_fields(config_cls) -> list[FieldInfo]:
    """Describe the fields of a config dataclass (type, default, range, help)."""
    hints = get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        m = f.metadata
        out.append(FieldInfo(f.name, hints[f.name], default, m.get("help", ""), m.get("min"), m.get("max"),
                             m.get("choices"), m.get("advanced", False)))
    return out


def validate_fields(config) -> None:
    """Check types, ranges and choices declared in the fields' metadata; raise ConfigError."""
    hints = get_type_hints(type(config))
    for info in form_fields(type(config)):
        value = getattr(config, info.name)
        expected = hints[info.name]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if expected in (int, float, bool, str) and (not isinstance(value, expected) or
                                                    (expected is int and isinstance(value, bool))):
            raise ConfigError(f"{info.name}={value!r} must be of type {expected.__name__}")
        if info.choices is not None and value not in info.choices:
            raise ConfigError(f"{info.name}={value!r} is not one of: {', '.join(map(str, info.choices))}")
        ranged = info.min is not None or info.max is not None
        if ranged and isinstance(value, float) and not math.isfinite(value):
            # (every comparison with NaN is false, so a range check alone would let it through)
            raise ConfigError(f"{info.name}={value!r} must be a finite number"
                              f"{_range_text(info.min, info.max)}")
        if info.min is not None and value < info.min:
            raise ConfigError(f"{info.name}={value!r} is below its minimum {info.min}")
        if info.max is not None and value > info.max:
            raise ConfigError(f"{info.name}={value!r} is above its maximum {info.max}")


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    return f" of at least {lo}" if lo is not None else f" of at most {hi}"


def from_mapping(config_cls, values: Mapping[str, Any] | None):
    """Build ``config_cls`` from a mapping, rejecting unknown keys and coercing ints to floats."""
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(values) - set(names))
    if unknown:
        valid = f"valid: {', '.join(sorted(names))}" if names else "it takes no settings"
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for {config_cls.__qualname__}; {valid}")
    hints = get_type_hints(config_cls)
    for k, v in list(values.items()):
        if hints[k] is float and isinstance(v, int) and not isinstance(v, bool):
            values[k] = float(v)
    obj = config_cls(**values)
    validate_fields(obj)
    return obj


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. The same seed gives the same event history on CPU."""

    source: str = spec("moons", "source dataset spec, e.g. digits or moons:noise=0.1")
    target: str = spec("moons:rotate=30", "target dataset spec, e.g. digits:rotate=30,invert")
    strategy: str = spec("dann", "transfer strategy")
    params: dict = spec({}, "strategy hyperparameters (see the strategy's Config)")
    target_labels: int = spec(0, "labelled target examples per class (0 = unsupervised adaptation)", 0, 100000)
    epochs: int = spec(30, "passes over the larger of the two training sets", 1, 1000)
    batch_size: int = spec(64, "examples per stream per step", 2, 4096)
    lr: float = spec(3e-3, "learning rate (initial, when annealed)", 1e-6, 1.0)
    lr_schedule: str = spec("constant", "constant, or anneal: lr / (1 + 10p)^0.75 over training progress p "
                                      "(Ganin et al., JMLR 2016)", choices=("constant", "anneal"))
    weight_decay: float = spec(0.0, "weight decay (L2) of the optimiser", 0.0, 1.0, advanced=True)
    optimizer: str = spec("adam", "adam, or sgd with momentum (the optimiser of DANN's paper, Ganin et al., "
                                  "JMLR 2016: SGD, momentum 0.9, with lr_schedule=anneal)",
                          choices=("adam", "sgd"), advanced=True, result=UNLESS_DEFAULT)
    momentum: float = spec(0.9, "momentum of sgd (Adam ignores it)", 0.0, 0.999, advanced=True,
                           result=UNLESS_DEFAULT)
    seed: int = spec(0, "seed for data shifts, sampling and initialisation", 0, 2**31 - 1)
    model: str = spec("auto", "model: auto picks mlp for 2-D data and lenet for images (adabn: their batch-norm variants)", advanced=True)
    amp: bool = spec(True, "mixed precision (bf16, else fp16) on CUDA", advanced=True)  # see result_fields
    device: str = spec("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps", advanced=True,
                       result=False)
    threads: int = spec(0, "CPU intra-op threads (0 = choose automatically)", 0, 256, advanced=True, result=False)
    log_every: int = spec(10, "steps between step events (one device sync each)", 1, 100000, advanced=True,
                         result=False)
    evals_per_epoch: int = spec(1, "evaluations on the test splits per epoch", 1, 100, advanced=True,
                                result=False)
    data_dir: str = spec("", "directory with downloaded datasets (empty = default)", advanced=True,
                         result=False)
    data_mode: str = spec("auto", "auto: image folders above the resident limit ($TRANSFER_LAB_MAX_RESIDENT_MB) "
                                  "stream from disk through a DataLoader, smaller data stays in memory; resident: "
                                  "always in memory (refuses above the limit); stream: always through the DataLoader",
                          choices=("auto", "resident", "stream"), advanced=True,
                          result=False)  # a streamed run trains on the same rows (tlcore.train.index_plan)
    loader_workers: int = spec(2, "DataLoader worker processes that decode images when the data streams "
                                  "(0 = decode in the training process)", 0, 64, advanced=True,
                               result=False)
    batch_size_auto: bool = spec(True, "on a CUDA GPU, lower the batch size to the largest that fits in GPU memory "
                                       "(found by trying real forward and backward passes); no effect on a CPU",
                                 advanced=True, result=UNLESS_DEFAULT)

    def __post_init__(self) -> None:
        validate_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        return from_mapping(cls, values)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)


def result_fields(config: RunConfig, precision: str = "fp32") -> dict[str, Any]:
    """The settings that decide what a run computes: the input of the result key
    (:func:`tlcore.api.result_key`), which finds a stored run to reuse (a matched baseline,
    a sweep point) instead of training it again.

    Each field's ``result`` mode (see :data:`RESULT_MODES`) decides whether it is in. The
    device *name* is not (a CPU and a CUDA run in fp32 compute the same thing up to kernel
    rounding), but the arithmetic ``precision`` it ran in is: a bf16 or fp16 autocast run on a
    GPU is not the fp32 run on a CPU, so the one is never reused for the other. ``precision``
    is left out at fp32, so the keys of the CPU runs stored before it was added are unchanged.
    A strategy's hyperparameters (``params``, resolved) are filtered by their own fields' modes.
    """
    from .strategies import STRATEGIES  # (they import this module for spec())

    out = _result_values(type(config), config.to_dict())
    strategy = STRATEGIES.get(config.strategy)
    if strategy is not None and "params" in out:  # a strategy's hyperparameters carry result modes too
        out["params"] = _result_values(strategy.Config, out["params"])
    if precision != "fp32":
        out["precision"] = precision
    return out


def _result_values(config_cls, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the fields of ``config_cls`` whose result mode leaves them out."""
    out = dict(values)
    for f in dataclasses.fields(config_cls):
        mode = f.metadata.get("result", True)
        if f.name not in out or mode is True:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if mode is False or out[f.name] == default:
            del out[f.name]
    return out
