"""Domains, dataset specs, shifts and the dataset registry.

``load_domain("digits:rotate=30")`` gives one :class:`Domain`;
``make_pair("digits", "digits:texture=0.5", target_labels=5)`` gives a
:class:`DomainPair` ready for training. See docs/architecture.md, "Data contract".
"""
from .domain import Domain, DomainPair, Kind, as_float
from .lazy import LazyImages, is_lazy
from .roots import DataRoots
from .registry import (
    DATASETS,
    DatasetInfo,
    check_spec_access,
    describe_datasets,
    describe_shifts,
    domain_size,
    load_domain,
    make_pair,
    split_label_budget,
)
from .shifts import SHIFTS, ShiftDef, apply_shifts, derive_generator, derive_seed, format_value
from .spec import DatasetSpec, parse_spec

__all__ = [
    "DATASETS",
    "SHIFTS",
    "DataRoots",
    "DatasetInfo",
    "check_spec_access",
    "domain_size",
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
