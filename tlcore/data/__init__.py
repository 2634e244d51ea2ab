"""Domains, dataset specs, shifts and the dataset registry.

``load_domain("digits:rotate=30")`` gives one :class:`Domain`;
``make_pair("digits", "digits:texture=0.5", target_labels=5)`` gives a
:class:`DomainPair` ready for training. See docs/architecture.md, "Data contract".
"""
from .domain import Domain, DomainPair, Kind, as_float
from .lazy import LazyImages, is_lazy
from .registry import (
    DATASETS,
    DatasetInfo,
    describe_datasets,
    describe_shifts,
    load_domain,
    make_pair,
    split_label_budget,
)
from .shifts import SHIFTS, ShiftDef, apply_shifts, derive_generator, derive_seed, format_value
from .spec import DatasetSpec, parse_spec

__all__ = [
    "DATASETS",
    "SHIFTS",
    "DatasetInfo",
    "DatasetSpec",
    "Domain",
    "DomainPair",
    "Kind",
    "LazyImages",
    "ShiftDef",
    "apply_shifts",
    "as_float",
    "derive_generator",
    "derive_seed",
    "describe_datasets",
    "describe_shifts",
    "format_value",
    "is_lazy",
    "load_domain",
    "make_pair",
    "parse_spec",
    "split_label_budget",
]
