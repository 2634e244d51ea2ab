"""The one container for a domain, and for a source/target pair.

A :class:`Domain` holds train and test tensors, labels, class names and a
human-readable account of how it was made. Two kinds exist:

* ``"vector"``: ``x`` is float32 of shape ``(N, D)`` (the 2-D toy domains);
* ``"image"``: ``x`` is float32 in ``[0, 1]`` or uint8 in ``[0, 255]`` of shape
  ``(N, C, H, W)``. uint8 keeps large datasets small on the device; the
  training loop converts a batch with :func:`as_float` after indexing. A
  *streamed* image domain (too large to hold; see :mod:`tlcore.data.limits`)
  holds :class:`~tlcore.data.lazy.LazyImages` instead, which reads like a
  uint8 tensor (``len``, ``shape``, indexing gives decoded rows) but decodes
  its files only when rows are read.

Labels are int64 indices into ``class_names``. Shifts return new domains and
never modify tensors in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

Kind = Literal["vector", "image"]


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as float32; uint8 images are scaled from [0, 255] to [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float() if x.dtype != torch.float32 else x


@dataclass(frozen=True, eq=False)
class Domain:
    """One domain: tensors, labels, class names and how it was made.

    Attributes
    ----------
    name: the dataset spec that produced it, e.g. ``"digits:rotate=30"``.
    kind: ``"vector"`` or ``"image"``.
    x_train, y_train, x_test, y_test: the data (see module docstring).
    class_names: one name per label index.
    description: steps in words, in the order they were applied
        (source data, shifts, preprocessing).
    warnings: what the user should know about the data's files, in words (e.g. a file whose
        checksum differs from the published one but whose content checked out); recorded with
        the run as ``data_warnings`` and shown on Train.
    """

    name: str
    kind: Kind
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    description: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{self.name}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}")
            if y.dtype != torch.int64:
                raise ValueError(f"{self.name}: y_{split} must be int64, got {y.dtype}")
        expected_ndim = 2 if self.kind == "vector" else 4
        if self.x_train.ndim != expected_ndim:
            raise ValueError(f"{self.name}: a {self.kind} domain needs {expected_ndim}-d x, got {tuple(self.x_train.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(2,)`` or ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def with_steps(self, *steps: str, **changes) -> "Domain":
        """A copy with ``changes`` applied and ``steps`` appended to the description."""
        return replace(self, description=self.description + tuple(steps), **changes)

    def class_counts(self, split: str = "train") -> list[int]:
        y = self.y_train if split == "train" else self.y_test
        return torch.bincount(y, minlength=self.num_classes).tolist()

    def summary(self) -> str:
        return f"{self.name}: {self.kind} {self.input_shape}, {len(self.y_train)} train / {len(self.y_test)} test, {self.num_classes} classes"


@dataclass(frozen=True, eq=False)
class DomainPair:
    """A source and a target in one shared representation, with the target label budget applied.

    ``target_labelled`` holds the indices (into ``target.x_train``) of the ``k``
    labelled examples per class; ``target_unlabelled`` the rest of the target
    training set. ``harmonisation`` says, in words, what was done to bring both
    domains to one representation (channels, size, class order).
    """

    source: Domain
    target: Domain
    target_labels_per_class: int
    target_labelled: torch.Tensor
    target_unlabelled: torch.Tensor
    harmonisation: tuple[str, ...] = field(default_factory=tuple)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

    @property
    def kind(self) -> Kind:
        return self.source.kind

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.source.input_shape

    @property
    def heterogeneous(self) -> bool:
        """Whether source and target share no input space (different kinds or shapes): the
        model then takes target inputs only (see ``make_pair(..., heterogeneous=True)``)."""
        return self.source.kind != self.target.kind or self.source.input_shape != self.target.input_shape

    def warnings(self) -> list[str]:
        """Both domains' data warnings, each prefixed with its role (see :attr:`Domain.warnings`)."""
        return [f"source: {w}" for w in self.source.warnings] + [f"target: {w}" for w in self.target.warnings]

    def describe(self) -> list[str]:
        """The whole preprocessing of the pair, in words."""
        lines = [f"source: {s}" for s in self.source.description]
        lines += [f"target: {s}" for s in self.target.description]
        lines += list(self.harmonisation)
        k = self.target_labels_per_class
        lines.append(
            f"target label budget: {k} labelled example(s) per class "
            f"({len(self.target_labelled)} labelled, {len(self.target_unlabelled)} unlabelled)"
            if k else f"target label budget: 0 (unsupervised adaptation; {len(self.target_unlabelled)} unlabelled)"
        )
        return lines
