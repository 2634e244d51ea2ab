"""The dataset registry, and the two entry points that turn specs into data.

* :func:`load_domain` parses a spec such as ``"digits:rotate=30"``, loads the
  base dataset and applies the shifts;
* :func:`make_pair` loads a source and a target, brings them to one
  representation (class order, channels, image size) and splits the target
  training set into a labelled budget and an unlabelled rest.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import BudgetError, ClassMismatchError, RepresentationMismatchError, with_article
from . import builtin, folder, torchvision_data
from .builtin import stratified_split
from .domain import Domain, DomainPair, as_float
from .lazy import LazyImages, is_lazy
from .limits import check_data_mode, check_resident_size, exceeds_limit
from .roots import DataRoots
from .shifts import SHIFTS, apply_shifts, derive_generator
from .spec import DatasetSpec, parse_spec


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset.

    Attributes
    ----------
    name: key in :data:`DATASETS` and in spec strings.
    kind: ``"vector"`` or ``"image"``.
    description: one line for the CLI and the app.
    builtin: ``True`` when it needs no download.
    loader: ``loader(seed, part, **options) -> Domain``; built-in loaders take
        just ``(seed, part)``. Datasets that are not built in also receive
        ``data_dir``, and datasets with ``takes_argument`` receive ``argument``.
    takes_argument: whether the spec names an argument, as in ``folder:PATH``.
    load_options: shift names (e.g. ``resize``, ``limit``) that the loader
        applies itself while reading files when they come first in the spec,
        passed as keyword arguments; the result is the same as applying the
        shift afterwards, but without decoding everything at full size first.
    streams: whether the loader takes ``data_mode`` and can return a streamed
        domain (:class:`~tlcore.data.lazy.LazyImages` inputs) instead of a
        resident one; the others always load resident tensors.
    """

    name: str
    kind: str
    description: str
    builtin: bool
    loader: Callable[..., Domain] = field(repr=False)
    takes_argument: bool = False
    load_options: frozenset[str] = frozenset()
    streams: bool = False

    def load(self, seed: int, part: int | None = None, data_dir: str | os.PathLike | None = None,
             argument: str | None = None, data_mode: str = "resident", roots: DataRoots | None = None,
             **load_options: float) -> Domain:
        """Call the loader with the options this dataset understands (see :func:`check_access` for ``roots``)."""
        self.check_access(argument, data_dir, roots)
        options: dict = dict(load_options)
        if not self.builtin:
            options["data_dir"] = data_dir
        if self.takes_argument:
            options["argument"] = argument
            options["roots"] = roots
        if self.streams:
            options["data_mode"] = data_mode
        return self.loader(seed, part, **options)

    def check_access(self, argument: str | None, data_dir: str | os.PathLike | None,
                     roots: DataRoots | None) -> None:
        """With ``roots``, refuse (:class:`~tlcore.errors.ConfinementError`) what this dataset would read
        outside them: a ``folder:`` argument's folder, and for a downloadable dataset its data directory
        (where it is read from and downloaded into). Built-in datasets read no file."""
        if roots is None or self.builtin:
            return
        if self.takes_argument:
            folder.resolve_folder(argument or "", data_dir, roots)
        else:
            roots.check(torchvision_data.resolve_data_dir(data_dir), f"the data directory of {self.name}")

    def split_load_options(self, shifts: tuple) -> tuple[dict[str, float], tuple]:
        """The leading shifts this loader applies while reading (each name once), and the rest."""
        early: dict[str, float] = {}
        position = 0
        while position < len(shifts) and shifts[position][0] in self.load_options \
                and shifts[position][0] not in early:
            early[shifts[position][0]] = shifts[position][1]
            position += 1
        return early, tuple(shifts[position:])


DATASETS: dict[str, DatasetInfo] = {
    "moons": DatasetInfo(
        "moons", "vector", "two interleaving moons in 2-D (2 classes), centred at the origin; 1000 train / 500 test",
        builtin=True, loader=builtin.load_moons,
    ),
    "blobs": DatasetInfo(
        "blobs", "vector", "three classes of 2-D Gaussian clusters around the origin, for covariate shift with bias=",
        builtin=True, loader=builtin.load_blobs,
    ),
    "digits": DatasetInfo(
        "digits", "image", "scikit-learn 8×8 handwritten digits resized to 1×28×28 (10 classes, 1797 images)",
        builtin=True, loader=builtin.load_digits,
    ),
    # torchvision datasets, read from (or downloaded into) the data directory in torchvision's layout
    **{
        name: DatasetInfo(name, "image", source.summary, builtin=False, loader=torchvision_data.loader_for(name),
                          load_options=frozenset({"resize"}) if name == "stl10" else frozenset())
        for name, source in torchvision_data.SOURCES.items()
    },
    "folder": DatasetInfo(
        "folder", "image", "your images, folder:PATH with PATH/<class>/<image> (one domain of Office-31, "
        "Office-Home, PACS: folder:ROOT/<domain>); RGB 224×224 unless the spec starts with resize=PX",
        builtin=False, loader=folder.load_folder, takes_argument=True, load_options=frozenset({"resize", "limit"}),
        streams=True,
    ),
}


def _as_spec(spec: str | DatasetSpec) -> DatasetSpec:
    """Parse text; re-check a ready-made :class:`DatasetSpec` the same way (it may be hand-built)."""
    return parse_spec(spec if isinstance(spec, str) else str(spec), DATASETS)


def load_domain(spec: str | DatasetSpec, seed: int = 0, data_dir: str | os.PathLike | None = None,
                part: int | None = None, data_mode: str = "resident", roots: DataRoots | None = None) -> Domain:
    """Load the domain that ``spec`` names.

    Parameters
    ----------
    spec: e.g. ``"digits:rotate=30,invert"`` or a :class:`DatasetSpec`.
    seed: seeds the base sample (synthetic datasets, training halves) and the shifts.
    data_dir: where downloadable datasets live (unused by built-in ones).
    part: ``None`` for the whole training set, 0 or 1 for one of two disjoint halves.
    data_mode: ``"resident"`` (refuse data above the resident limit), ``"auto"``
        (stream it from disk instead) or ``"stream"`` (always stream datasets that
        can: ``folder:``); see :mod:`tlcore.data.limits`. Shifts that need the
        whole split in memory refuse a streamed domain with a message naming the fix.
    roots: confine what may be read (:mod:`tlcore.data.roots`; the app passes its
        roots, the CLI none): a folder or data directory outside them raises
        :class:`~tlcore.errors.ConfinementError`.

    Returns a new :class:`Domain` whose ``name`` is the canonical spec string.
    Raises :class:`~tlcore.errors.UnknownNameError` or
    :class:`~tlcore.errors.SpecError` for a bad spec.
    """
    check_data_mode(data_mode)
    parsed = _as_spec(spec)
    info = DATASETS[parsed.dataset]
    early, shifts = info.split_load_options(parsed.shifts)
    base = info.load(seed, part, data_dir=data_dir, argument=parsed.argument, data_mode=data_mode, roots=roots,
                     **early)
    return apply_shifts(base, shifts, seed).with_steps(name=str(parsed))


# --------------------------------------------------------------------------- pairs
def shares_input_space(source: Domain, target: Domain) -> bool:
    """Whether one model can take both domains' inputs (after image harmonisation): both images,
    or vectors of one dimension."""
    if source.kind != target.kind:
        return False
    return source.kind == "image" or source.input_shape == target.input_shape


def _accepting_strategies() -> str:
    """The registered strategies that accept heterogeneous pairs, in words (for messages)."""
    from ..strategies import heterogeneous_strategies  # the data layer names them only in this message

    names = heterogeneous_strategies()
    return ", ".join(names) if names else "none is registered"


def check_representations(source: Domain, target: Domain, heterogeneous: bool = False) -> list[str]:
    """Raise RepresentationMismatchError when the domains share no input space, unless the run's
    strategy accepts heterogeneous pairs (``heterogeneous``); then say so in words."""
    if shares_input_space(source, target):
        return []
    if source.kind != target.kind:
        what = (f"source {source.name!r} is {with_article(source.kind)} domain {source.input_shape} but target "
                f"{target.name!r} is {with_article(target.kind)} domain {target.input_shape}")
        fix = "choose two vector or two image datasets"
    else:
        what = (f"source {source.name!r} has {source.input_shape[0]}-dimensional inputs but target {target.name!r} "
                f"has {target.input_shape[0]}")
        fix = "vector domains must have the same dimension"
    if heterogeneous:
        return [f"heterogeneous pair: {what}; no model takes both, so the strategy learns from each domain's "
                "structure alone"]
    raise RepresentationMismatchError(
        f"{what}; {fix}, or use a strategy that accepts heterogeneous pairs (it matches the domains by the "
        f"structure within each, not by shared inputs): {_accepting_strategies()}"
    )


def _align_classes(source: Domain, target: Domain) -> tuple[Domain, list[str]]:
    """Give the target the source's class order (relabelling it), or raise ClassMismatchError."""
    if target.class_names == source.class_names:
        return target, []
    if sorted(target.class_names) != sorted(source.class_names):
        raise ClassMismatchError(source.class_names, target.class_names)
    source_index = {name: index for index, name in enumerate(source.class_names)}
    relabel = torch.tensor([source_index[name] for name in target.class_names], dtype=torch.int64)
    aligned = target.with_steps(
        y_train=relabel[target.y_train], y_test=relabel[target.y_test], class_names=source.class_names,
    )
    return aligned, [f"target labels remapped to the source's class order ({', '.join(source.class_names)})"]


def _with_images(domain: Domain, transform: Callable[[torch.Tensor], torch.Tensor], lazily: bool = False) -> Domain:
    """``transform`` applied to both splits: now, or when rows are read (streamed inputs, or ``lazily``)."""
    if lazily or is_lazy(domain.x_train):
        lazy = {split: getattr(domain, f"x_{split}") for split in ("train", "test")}
        lazy = {split: x if is_lazy(x) else LazyImages.from_tensor(x) for split, x in lazy.items()}
        return domain.with_steps(x_train=lazy["train"].map(transform), x_test=lazy["test"].map(transform))
    return domain.with_steps(x_train=transform(domain.x_train), x_test=transform(domain.x_test))


def _repeat_rgb(x: torch.Tensor) -> torch.Tensor:
    """Grayscale (N, 1, H, W) repeated to 3 channels (module level: streamed domains pickle it)."""
    return x.repeat(1, 3, 1, 1)


def _resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize that keeps uint8 images uint8."""
    result = F.interpolate(as_float(x), size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)
    if x.dtype == torch.uint8:
        return result.mul(255.0).round().to(torch.uint8)
    return result.to(x.dtype)


def _harmonise_images(source: Domain, target: Domain, data_mode: str = "resident") -> tuple[Domain, Domain, list[str]]:
    """Bring both image domains to the same channels and size, saying what was done.

    Streamed domains are harmonised per image when read. A resident domain whose
    resized images would exceed the resident limit is refused in ``"resident"``
    mode and resized per image when read otherwise."""
    steps = []
    domains = {"source": source, "target": target}
    channels = {role: d.input_shape[0] for role, d in domains.items()}
    if channels["source"] != channels["target"]:
        if sorted(channels.values()) != [1, 3]:
            raise RepresentationMismatchError(
                f"source has {channels['source']}-channel images and target {channels['target']}-channel images; "
                "only grayscale (1) and RGB (3) can be harmonised"
            )
        gray, rgb = ("source", "target") if channels["source"] == 1 else ("target", "source")
        domains[gray] = _with_images(domains[gray], _repeat_rgb)
        steps.append(f"{gray} grayscale images repeated to 3 channels to match the RGB {rgb}")

    sizes = {role: tuple(d.input_shape[1:]) for role, d in domains.items()}
    if sizes["source"] != sizes["target"]:
        common = (max(s[0] for s in sizes.values()), max(s[1] for s in sizes.values()))
        for role in ("source", "target"):
            if sizes[role] != common:
                domain = domains[role]
                count, shape = len(domain.y_train) + len(domain.y_test), (domain.input_shape[0], *common)
                element = domain.x_train.element_size()
                lazily = not is_lazy(domain.x_train) and data_mode != "resident" and exceeds_limit(count, shape, element)
                if not is_lazy(domain.x_train) and not lazily:
                    check_resident_size(
                        f"{role} {domain.name} resized to {common[0]}×{common[1]} to match the other domain",
                        count, shape, bytes_per_value=element,
                        advice="bring the larger domain down first (e.g. TARGET:resize=32), ",
                    )
                domains[role] = _with_images(domains[role], functools.partial(_resized, size=common), lazily=lazily)
                when = " when each batch is read (streamed: resized, they would exceed the resident limit)" \
                    if lazily else " when each batch is read" if is_lazy(domain.x_train) else ""
                steps.append(f"{role} images resized from {sizes[role][0]}×{sizes[role][1]} to "
                             f"{common[0]}×{common[1]} (bilinear) to match the larger size{when}")
    return domains["source"], domains["target"], steps


def split_label_budget(y: torch.Tensor, class_names: tuple[str, ...], per_class: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose ``per_class`` labelled indices of each class at random; the rest are unlabelled.

    Returns two sorted int64 index tensors that together cover ``range(len(y))``.
    Raises :class:`BudgetError` when ``per_class`` is negative or a class has
    fewer than ``per_class`` examples (the whole class may be labelled).
    """
    if per_class < 0:
        raise BudgetError(f"target_labels must be >= 0 labelled examples per class, got {per_class}")
    counts = torch.bincount(y, minlength=len(class_names)).tolist()
    short = [label for label, count in enumerate(counts) if count < per_class]
    if short:
        worst = min(short, key=lambda label: counts[label])
        raise BudgetError(
            f"target_labels={per_class} labelled examples per class, but target class '{class_names[worst]}' has only "
            f"{counts[worst]} training examples; the largest valid target_labels is {min(counts)}"
        )
    labelled = []
    for label in range(len(class_names)):
        members = torch.nonzero(y == label).flatten()
        labelled.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    labelled_index = torch.sort(torch.cat(labelled)).values.to(torch.int64)
    is_unlabelled = torch.ones(len(y), dtype=torch.bool)
    is_unlabelled[labelled_index] = False
    return labelled_index, torch.nonzero(is_unlabelled).flatten().to(torch.int64)


def make_pair(source: str | DatasetSpec, target: str | DatasetSpec, seed: int = 0, target_labels: int = 0,
              data_dir: str | os.PathLike | None = None, data_mode: str = "resident",
              heterogeneous: bool = False, roots: DataRoots | None = None) -> DomainPair:
    """Load a source and a target domain in one shared representation, with a target label budget.

    Parameters
    ----------
    source, target: dataset specs, e.g. ``"digits"`` and ``"digits:texture=0.5"``.
    seed: seeds both domains and the choice of labelled target examples.
    target_labels: ``k``, the number of labelled target training examples per class.
    data_dir: where downloadable datasets live.
    data_mode: ``"resident"``, ``"auto"`` or ``"stream"``, as in :func:`load_domain`
        (runs pass :attr:`RunConfig.data_mode`, ``"auto"`` by default).
    heterogeneous: accept domains that share no input space (vector vs image, or
        vectors of different dimensions), for strategies that declare
        ``heterogeneous = True`` (:class:`tlcore.strategies.base.Strategy`); the pair's
        ``harmonisation`` then says so and :attr:`DomainPair.heterogeneous` is true.
    roots: confine what may be read, as in :func:`load_domain`.

    When both specs share their base dataset, the source is loaded from
    training half 0 and the target from half 1, so they share no training
    example. Then: a target whose classes are the source's in another order is
    relabelled to the source's order; grayscale images are repeated to RGB
    when the other side is RGB; the smaller images are resized to the larger
    size. ``harmonisation`` lists each step taken.

    Raises
    ------
    ClassMismatchError: the class sets differ (the message lists both).
    RepresentationMismatchError: vector vs image, or vector dimensions differ, and not
        ``heterogeneous`` (the message names the strategies that accept such a pair).
    BudgetError: ``target_labels < 0`` or a target class with fewer than
        ``target_labels`` training examples (the message names the class, its
        count and the largest valid value).
    """
    source_spec, target_spec = _as_spec(source), _as_spec(target)
    same_base = (source_spec.dataset, source_spec.argument) == (target_spec.dataset, target_spec.argument)
    source_part, target_part = (0, 1) if same_base else (None, None)
    source_domain = load_domain(source_spec, seed, data_dir=data_dir, part=source_part, data_mode=data_mode,
                                roots=roots)
    target_domain = load_domain(target_spec, seed, data_dir=data_dir, part=target_part, data_mode=data_mode,
                                roots=roots)

    harmonisation = []
    if same_base:
        harmonisation.append(
            f"source and target share the base dataset {source_spec.dataset!r}: source drawn from training part 0, "
            "target from part 1, so they share no training example"
        )
    harmonisation += check_representations(source_domain, target_domain, heterogeneous)
    target_domain, steps = _align_classes(source_domain, target_domain)
    harmonisation += steps
    if source_domain.kind == target_domain.kind == "image":
        source_domain, target_domain, steps = _harmonise_images(source_domain, target_domain, data_mode)
        harmonisation += steps

    labelled, unlabelled = split_label_budget(
        target_domain.y_train, target_domain.class_names, target_labels, derive_generator(seed, "target_labels")
    )
    return DomainPair(
        source=source_domain, target=target_domain, target_labels_per_class=target_labels,
        target_labelled=labelled, target_unlabelled=unlabelled, harmonisation=tuple(harmonisation),
    )


# --------------------------------------------------------------------------- checks before a run
def check_spec_access(spec: str | DatasetSpec, data_dir: str | os.PathLike | None = None,
                      roots: DataRoots | None = None) -> None:
    """Refuse, before a run starts, a spec that would read outside ``roots``.

    A ``folder:`` spec's folder is scanned (file names only, nothing decoded), so
    a class folder or an image file inside it that is a link leaving the roots
    is refused too; a downloadable dataset's data directory must lie below the
    roots. Raises :class:`~tlcore.errors.ConfinementError` (and the scanner's
    errors for a folder that cannot be read). Nothing to check without roots.
    """
    if roots is None:
        return
    parsed = _as_spec(spec)
    info = DATASETS[parsed.dataset]
    info.check_access(parsed.argument, data_dir, roots)
    if info.takes_argument:
        folder.scan_domain(folder.resolve_folder(parsed.argument or "", data_dir, roots), parsed.argument or "",
                           roots)


def domain_size(spec: str | DatasetSpec, data_dir: str | os.PathLike | None = None,
                roots: DataRoots | None = None) -> int:
    """How many examples (train and test together) the domain ``spec`` holds at most, without decoding images.

    A ``folder:`` spec counts its image files; other datasets are loaded (built-in
    ones are generated; a torchvision dataset is read from the data directory,
    and downloaded when its files are missing: check
    :func:`tlcore.data.torchvision_data.dataset_status` first where that must not happen). A ``limit=N`` anywhere in the spec keeps
    at most N per class of each split; other shifts never add examples, so the
    count is an upper bound of what a run trains and tests on.
    """
    parsed = _as_spec(spec)
    info = DATASETS[parsed.dataset]
    if info.takes_argument:
        layout = folder.scan_domain(folder.resolve_folder(parsed.argument or "", data_dir, roots),
                                    parsed.argument or "", roots)
        train, test = stratified_split(layout.labels, 1.0 - folder.FOLDER_TEST_FRACTION,
                                       torch.Generator().manual_seed(folder.FOLDER_SPLIT_SEED))
        splits = (layout.labels[train], layout.labels[test])
    else:
        base = info.load(0, None, data_dir=data_dir, argument=parsed.argument, data_mode="stream", roots=roots)
        splits = (base.y_train, base.y_test)
    limits = [value for name, value in parsed.shifts if name == "limit" and value is not None]
    if not limits:
        return sum(len(y) for y in splits)
    per_class = int(min(limits))
    return sum(int(torch.bincount(y).clamp(max=per_class).sum()) for y in splits if len(y))


# --------------------------------------------------------------------------- listings
def describe_datasets() -> list[dict]:
    """One row per registered dataset: name, kind, builtin, takes_argument, description."""
    return [
        {"name": info.name, "kind": info.kind, "builtin": info.builtin,
         "takes_argument": info.takes_argument, "description": info.description}
        for info in DATASETS.values()
    ]


def describe_shifts() -> list[dict]:
    """One row per shift: name, usage, takes_value, value_name, default, range, applies_to, help."""
    return [
        {"name": shift.name, "usage": shift.usage, "takes_value": shift.takes_value,
         "value_name": shift.value_name if shift.takes_value else None, "default": shift.default,
         "range": shift.range_text(), "applies_to": sorted(shift.applies_to), "help": shift.help}
        for shift in SHIFTS.values()
    ]
