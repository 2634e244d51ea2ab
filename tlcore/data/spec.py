"""Dataset specs: the text that names a domain, e.g. ``"digits:rotate=30,invert"``.

Grammar (whitespace around every token is ignored)::

    SPEC  = NAME [ ":" ARG ] [ ":" SHIFT { "," SHIFT } ]
    SHIFT = name | name "=" number

``ARG`` exists only for datasets whose registry entry sets
``takes_argument`` (for example a future ``folder:/some/path``); for every
other dataset the text after the first ``:`` is the shift list. An argument
runs up to the *last* ``:``, so ``folder:/data/a:rotate=30`` has argument
``/data/a`` and one shift, while ``folder:/data/a`` has no shifts.

``str(spec)`` gives the canonical form: names without spaces and values
written compactly (``30`` not ``30.0``); a bare ``permute`` stays bare.
``parse_spec(str(spec)) == spec`` for every spec that ``parse_spec`` returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from ..errors import SpecError, UnknownNameError
from .shifts import SHIFTS, format_value, resolve_shift_value

GRAMMAR = "NAME[:SHIFT[,SHIFT...]] with SHIFT = name or name=value, e.g. 'digits:rotate=30,invert'"


class DatasetEntry(Protocol):
    """What :func:`parse_spec` needs to know about a dataset (``registry.DatasetInfo`` has it)."""

    kind: str
    takes_argument: bool


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec.

    Attributes
    ----------
    dataset: registry name of the base dataset, e.g. ``"digits"``.
    shifts: ``(name, value)`` pairs in the order they apply; ``value`` is
        ``None`` for a flag such as ``invert``.
    argument: the dataset's argument (e.g. a folder path) for datasets that
        take one, else ``None``.
    """

    dataset: str
    shifts: tuple[tuple[str, float | None], ...] = ()
    argument: str | None = None

    def __str__(self) -> str:
        text = self.dataset if self.argument is None else f"{self.dataset}:{self.argument}"
        if self.shifts:
            text += ":" + ",".join(_format_shift(name, value) for name, value in self.shifts)
        return text


def _format_shift(name: str, value: float | None) -> str:
    shift = SHIFTS.get(name)
    if value is None or (shift is not None and shift.default is not None and value == shift.default):
        return name
    return f"{name}={format_value(value)}"


def parse_spec(text: str, datasets: Mapping[str, DatasetEntry] | None = None) -> DatasetSpec:
    """Parse ``text`` into a checked :class:`DatasetSpec`.

    Parameters
    ----------
    text: e.g. ``"digits:rotate=30,invert"`` or ``" moons : noise = 0.2 "``.
    datasets: the datasets that exist, by name; defaults to
        :data:`tlcore.data.registry.DATASETS`. Each entry needs ``kind`` and
        ``takes_argument``.

    Raises
    ------
    UnknownNameError: an unknown dataset or shift name (the message lists the valid ones).
    SpecError: malformed text, a missing or non-numeric value, a value given to
        a flag, a value out of range (the message names the shift, the value
        and the valid range), or a shift that does not apply to the dataset's
        kind (e.g. ``moons:invert``).
    """
    if datasets is None:
        # Imported here, not at module level: the registry imports this module.
        from .registry import DATASETS as datasets
    if not isinstance(text, str):
        raise SpecError(f"a dataset spec must be text, got {type(text).__name__}; expected {GRAMMAR}")
    name, has_colon, rest = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise SpecError(f"{text!r}: the dataset name is missing; expected {GRAMMAR}")
    if name not in datasets:
        raise UnknownNameError("dataset", name, datasets)
    entry = datasets[name]

    argument = None
    if getattr(entry, "takes_argument", False):
        if not has_colon:
            raise SpecError(f"{text!r}: dataset {name} needs an argument, written {name}:ARGUMENT[:SHIFTS]")
        # The argument runs to the last ':' so that it may itself contain ':'.
        argument, has_colon, rest = rest.rpartition(":") if ":" in rest else (rest, "", "")
        argument = argument.strip()
        if not argument:
            raise SpecError(f"{text!r}: dataset {name} needs an argument, written {name}:ARGUMENT[:SHIFTS]")

    shifts: list[tuple[str, float | None]] = []
    if has_colon:
        kind = entry.kind
        for item in rest.split(","):
            shifts.append(_parse_shift(item.strip(), text, name, kind))
            if shifts[-1][0] == "flatten":  # the shifts after it see a vector domain
                kind = "vector"
    return DatasetSpec(dataset=name, shifts=tuple(shifts), argument=argument)


def _parse_shift(item: str, text: str, dataset: str, kind: str) -> tuple[str, float | None]:
    """One ``name`` or ``name=value`` item, checked against the dataset's kind."""
    if not item:
        raise SpecError(f"{text!r}: empty shift (a stray ',' or a ':' with nothing after it); expected {GRAMMAR}")
    shift_name, has_equals, value_text = (part.strip() for part in item.partition("="))
    if not shift_name:
        raise SpecError(f"{text!r}: {item!r} has no shift name before '='")
    if shift_name not in SHIFTS:
        raise UnknownNameError("shift", shift_name, SHIFTS)
    value = None
    if has_equals:
        if not value_text:
            raise SpecError(f"{text!r}: '{shift_name}=' has no value after '='")
        try:
            value = float(value_text)
        except ValueError:
            raise SpecError(f"{shift_name}={value_text}: {value_text!r} is not a number") from None
    return shift_name, resolve_shift_value(shift_name, value, kind, context=dataset)
