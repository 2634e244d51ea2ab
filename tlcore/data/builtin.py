"""Built-in domains that need no download: ``moons``, ``blobs`` and ``digits``.

Every loader has the signature ``(seed, part) -> Domain``:

* ``seed`` makes the draw reproducible;
* ``part`` is ``None`` for the whole training set, or 0 / 1 for one of two
  disjoint halves of it. :func:`tlcore.data.registry.make_pair` asks for
  halves when source and target share a base dataset, so the two domains never
  share a training example. The test set does not depend on ``part``.

``moons`` and ``blobs`` are synthetic: each part is a fresh sample drawn with
its own seed (which is as good as disjoint for continuous data). ``digits``
splits its fixed training set into two stratified halves.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .domain import Domain
from .shifts import derive_generator

TRAIN_SIZE, TEST_SIZE = 1000, 500
VALID_PARTS = (None, 0, 1)


def _check_part(part: int | None) -> None:
    if part not in VALID_PARTS:
        raise SpecError(f"part must be None, 0 or 1, got {part!r}")


def _part_words(part: int | None) -> str:
    return "" if part is None else f" (training sample {part} of 2 drawn independently with its own seed)"


def _shuffled(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows in a seeded random order, so that no consumer sees the classes in blocks."""
    order = torch.randperm(len(y), generator=generator)
    return x[order], y[order]


def _balanced_labels(total: int, classes: int) -> torch.Tensor:
    """``total`` labels, as equal per class as possible, in class order."""
    counts = [total // classes + (label < total % classes) for label in range(classes)]
    return torch.repeat_interleave(torch.arange(classes), torch.tensor(counts))


# --------------------------------------------------------------------------- moons
MOONS_NOISE = 0.1
# scikit-learn's two moons span x in [-1, 2] and y in [-0.5, 1]; their centre is here.
MOONS_CENTRE = torch.tensor([0.5, 0.25])


def sample_moons(n: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles as in ``sklearn.datasets.make_moons``, centred at the origin.

    Label 0 is the upper moon, label 1 the lower one; positions along each
    moon are uniform in angle, plus isotropic Gaussian noise of std ``noise``.
    """
    y = _balanced_labels(n, 2)
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    x = torch.where((y == 0)[:, None], upper, lower)
    x = x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return _shuffled((x - MOONS_CENTRE.to(torch.float64)).to(torch.float32), y, generator)


def load_moons(seed: int, part: int | None = None) -> Domain:
    """Two moons (2-D, classes "upper" and "lower"), noise 0.1, 1000 train / 500 test, centred."""
    _check_part(part)
    x_train, y_train = sample_moons(TRAIN_SIZE, MOONS_NOISE, derive_generator("moons", seed, "train", part))
    x_test, y_test = sample_moons(TEST_SIZE, MOONS_NOISE, derive_generator("moons", seed, "test"))
    return Domain(
        name="moons", kind="vector",
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=("upper", "lower"),
        description=(
            f"two moons (as scikit-learn make_moons), Gaussian noise {MOONS_NOISE}, centred at the origin; "
            f"{TRAIN_SIZE} train / {TEST_SIZE} test points{_part_words(part)}",
        ),
    )


# --------------------------------------------------------------------------- blobs
BLOBS_STD = 0.45
# Two Gaussian clusters per class on a ring of radius 2 (centred at the origin),
# classes alternating around it. Neighbouring clusters overlap a little, and
# every class has mass on both sides of the plane, so a sample-selection bias
# (`bias=`) changes which cluster of a class dominates: the picture in which
# importance weighting helps.
BLOBS_CLUSTERS = tuple(
    (2.0 * math.cos(2 * math.pi * i / 6), 2.0 * math.sin(2 * math.pi * i / 6)) for i in range(6)
)
BLOBS_CLASS_OF_CLUSTER = (0, 1, 2, 0, 1, 2)
BLOBS_CLASSES = ("A", "B", "C")


def sample_blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points, balanced over 3 classes, each class a mix of two Gaussian clusters."""
    cluster = _balanced_labels(n, len(BLOBS_CLUSTERS))
    centres = torch.tensor(BLOBS_CLUSTERS, dtype=torch.float64)[cluster]
    x = centres + BLOBS_STD * torch.randn(centres.shape, generator=generator, dtype=torch.float64)
    y = torch.tensor(BLOBS_CLASS_OF_CLUSTER)[cluster]
    return _shuffled(x.to(torch.float32), y, generator)


def load_blobs(seed: int, part: int | None = None) -> Domain:
    """Three classes (A, B, C) of 2-D Gaussian clusters around the origin, 1000 train / 500 test."""
    _check_part(part)
    x_train, y_train = sample_blobs(TRAIN_SIZE, derive_generator("blobs", seed, "train", part))
    x_test, y_test = sample_blobs(TEST_SIZE, derive_generator("blobs", seed, "test"))
    return Domain(
        name="blobs", kind="vector",
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=BLOBS_CLASSES,
        description=(
            f"blobs: 3 classes, each two Gaussian clusters (std {BLOBS_STD}) on a ring of radius 2 about the origin; "
            f"{TRAIN_SIZE} train / {TEST_SIZE} test points{_part_words(part)}",
        ),
    )


# --------------------------------------------------------------------------- digits
DIGITS_SIZE = 28
DIGITS_TEST_FRACTION = 0.3
# Fixed, independent of the run seed, so every run evaluates on the same test set.
DIGITS_SPLIT_SEED = 20240601


def stratified_split(y: torch.Tensor, first_fraction: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the indices of ``y`` into two sorted, disjoint sets with ``first_fraction`` of each class in the first."""
    first, second = [], []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = round(first_fraction * len(members))
        first.append(members[:cut])
        second.append(members[cut:])
    return torch.sort(torch.cat(first)).values, torch.sort(torch.cat(second)).values


@lru_cache(maxsize=1)
def _digits_base() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The resized digits and the fixed train/test split, computed once per process.

    Callers index into these tensors (which copies) and must not modify them.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn; no download

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).to(torch.float32).div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False,
                           antialias=True)
    images = images.clamp(0.0, 1.0).contiguous()
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    train_index, test_index = stratified_split(
        labels, 1.0 - DIGITS_TEST_FRACTION, torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    )
    return images, labels, train_index, test_index


def load_digits(seed: int, part: int | None = None) -> Domain:
    """scikit-learn's 8×8 digits, resized to 1×28×28 in [0, 1], fixed stratified 70/30 split.

    ``part`` 0 / 1 takes one of two stratified halves of the training set
    (chosen with ``seed``); the test set is always the same.
    """
    _check_part(part)
    images, labels, train_index, test_index = _digits_base()
    part_words = ""
    if part is not None:
        halves = stratified_split(labels[train_index], 0.5, derive_generator("digits", seed, "halves"))
        train_index = train_index[halves[part]]
        part_words = f"; training half {part} of 2 (stratified, disjoint from the other half)"
    return Domain(
        name="digits", kind="image",
        x_train=images[train_index], y_train=labels[train_index],
        x_test=images[test_index], y_test=labels[test_index],
        class_names=tuple(str(digit) for digit in range(10)),
        description=(
            f"scikit-learn digits ({len(labels)} 8×8 images), resized to {DIGITS_SIZE}×{DIGITS_SIZE} bilinear, "
            f"values in [0, 1]; fixed stratified 70/30 train/test split "
            f"({len(train_index)} train / {len(test_index)} test){part_words}",
        ),
    )
