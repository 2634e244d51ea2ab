"""Session state: the widget values of the Data and Train pages, their defaults, and the run
configuration they describe.

Every key is in ``pages._keys``; :func:`init_state` keeps the ``w.`` widget values across pages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from tlcore.config import FieldInfo, RunConfig, form_fields
from tlcore.data import DATASETS, SHIFTS, DatasetSpec, parse_spec
from tlcore.errors import (BudgetError, ClassMismatchError, DatasetUnavailableError, RepresentationMismatchError,
                           TransferLabError)
from tlcore.paths import default_data_dir
from tlcore.strategies import STRATEGIES

from pages import _keys as K


@dataclass(frozen=True)
class ShiftControl:
    """How the Data page draws one engine shift (see ``tlcore.data.SHIFTS``)."""

    name: str
    label: str
    neutral: float | bool | None   # the value that means "not applied" (None: an empty field)
    step: float = 0.05
    lo: float | None = None        # a narrower range than the engine's, for a usable slider
    hi: float | None = None
    advanced: bool = False


_DRAWN = (
    ShiftControl("rotate", "Rotation (degrees)", 0.0, 5.0, lo=-180.0, hi=180.0),
    ShiftControl("invert", "Invert intensities", False),
    ShiftControl("noise", "Gaussian noise (σ)", 0.0, 0.05),
    ShiftControl("blur", "Blur (σ, pixels)", 0.0, 0.25),
    ShiftControl("texture", "Texture blending (α)", 0.0, 0.05),
    ShiftControl("label_noise", "Label noise (rate)", 0.0, 0.05),
    ShiftControl("prior", "Class-prior shift (most / least frequent)", 1.0, 1.0),
    ShiftControl("permute", "Label permutation (fraction of classes)", 0.0, 0.1),
    ShiftControl("scale", "Scale (zoom)", 1.0, 0.05, advanced=True),
    ShiftControl("bias", "Sample-selection bias", 0.0, 0.5, advanced=True),
)


def _generic_control(name: str) -> ShiftControl:
    """A control for an engine shift without a hand-made one: a checkbox for a flag, else a
    number field that is left empty when the shift is not applied."""
    shift = SHIFTS[name]
    if not shift.takes_value:
        return ShiftControl(name, name, False, advanced=True)
    return ShiftControl(name, f"{name} ({shift.value_name}; empty = off)", None, step=1.0, advanced=True)


SHIFT_CONTROLS = tuple(c for c in _DRAWN if c.name in SHIFTS) + tuple(
    _generic_control(name) for name in SHIFTS if name not in {c.name for c in _DRAWN})
CONTROLS = {c.name: c for c in SHIFT_CONTROLS}


def shift_range(control: ShiftControl, kind: str) -> tuple[float, float]:
    lo, hi = SHIFTS[control.name].range_for(kind)
    return (max(lo, control.lo) if control.lo is not None else float(lo),
            min(hi, control.hi) if control.hi is not None else float(hi))


def applies(control: ShiftControl, kind: str) -> bool:
    return kind in SHIFTS[control.name].applies_to


def spec_state(role: str, spec: str) -> dict[str, Any]:
    """Widget values of ``role``'s dataset and shift controls that reproduce ``spec``.

    A dataset with an argument (``folder:pets/amazon``) is one choice of the select box,
    argument included (see :func:`dataset_choices`)."""
    parsed = parse_spec(spec)
    kind = DATASETS[parsed.dataset].kind
    choice = parsed.dataset if parsed.argument is None else f"{parsed.dataset}:{parsed.argument}"
    values: dict[str, Any] = {K.dataset(role): choice}
    for c in SHIFT_CONTROLS:
        values[K.shift(role, c.name)] = c.neutral if c.neutral is None or isinstance(c.neutral, bool) \
            else float(c.neutral)
    for name, value in parsed.shifts:
        c = CONTROLS[name]
        if isinstance(c.neutral, bool):
            values[K.shift(role, name)] = True
        else:
            value = SHIFTS[name].default if value is None else value
            lo, hi = shift_range(c, kind)
            values[K.shift(role, name)] = float(min(max(value, lo), hi))
    return values


def param_state(strategy: str, params: dict | None = None) -> dict[str, Any]:
    """Widget values of ``strategy``'s hyperparameters: defaults, overridden by ``params``."""
    params = params or {}
    return {K.param(strategy, f.name): _widget_value(f, params.get(f.name, f.default))
            for f in form_fields(STRATEGIES[strategy].Config)}


def _widget_value(f: FieldInfo, value: Any) -> Any:
    if f.type is float:
        return float(value)
    return value


def default_state() -> dict[str, Any]:
    run = RunConfig()
    values = dict(K.DEFAULTS)
    values.update(spec_state("source", run.source))
    values.update(spec_state("target", run.target))
    for name in STRATEGIES:
        values.update(param_state(name))
    return values


def init_state() -> None:
    """Seed missing keys with their defaults, and keep every ``w.`` widget value across pages.

    Streamlit forgets a widget's value when its page is not drawn; writing the
    value back at the start of every run keeps it (the documented way to carry
    widget state between pages).
    """
    state = st.session_state
    defaults = default_state()
    for key in set(defaults) | {k for k in state.keys() if isinstance(k, str) and k.startswith(K.WIDGET)}:
        try:
            state[key] = state[key]
        except KeyError:  # never set, or (in AppTest, after a page switch) dropped with its widget
            if key in defaults:
                state[key] = defaults[key]


def seed() -> int:
    """The seed from the sidebar."""
    return int(st.session_state.get(K.SEED, K.DEFAULTS[K.SEED]))


def dataset_choices() -> list[str]:
    """Datasets the Data page offers: the built-in ones first, then those that need a download,
    then datasets with an argument (``folder:pets``, ``folder:office31/amazon``) that this
    session added on the Data page (see ``pages._sources``) or that a source or target holds."""
    names = sorted((name for name, info in DATASETS.items() if not info.takes_argument),
                   key=lambda name: not DATASETS[name].builtin)
    state = st.session_state
    for choice in [*state.get(K.FOLDER_CHOICES, []), *(state.get(K.dataset(role)) for role in K.ROLES)]:
        if isinstance(choice, str) and choice not in names and split_choice(choice)[1] is not None:
            names.append(choice)
    return names


def dataset_label(name: str) -> str:
    dataset, argument = split_choice(name)
    info = DATASETS[dataset]
    if argument is not None:
        return f"{name} (your images)"
    return f"{name} ({info.kind}{'' if info.builtin else ', needs a download'})"


def explain_pair_error(exc: TransferLabError) -> str:
    """A user-facing explanation of why a pair cannot be made (no traceback)."""
    if isinstance(exc, (ClassMismatchError, RepresentationMismatchError)):
        head = ("**These two domains cannot be paired.** Transfer needs a source and a target that share one "
                "class set and one kind of input (2-D points or images): pick another dataset for one of them.")
    elif isinstance(exc, BudgetError):
        head = "**The target label budget is too large for this target.**"
    elif isinstance(exc, DatasetUnavailableError):
        head = "**A dataset is not available on this machine.**"
    else:
        head = "**These settings do not work.**"
    return f"{head}\n\n{exc}"


def spec_from_state(role: str) -> str:
    """The engine's spec text for ``role``, built from the Data page's controls."""
    state = st.session_state
    dataset, argument = split_choice(state[K.dataset(role)])
    info = DATASETS[dataset]
    shifts = []
    for c in SHIFT_CONTROLS:
        if not applies(c, info.kind):
            continue
        value = state.get(K.shift(role, c.name), c.neutral)
        if isinstance(c.neutral, bool):
            if value:
                shifts.append((c.name, None))
        elif value is not None and (c.neutral is None or float(value) != float(c.neutral)):
            shifts.append((c.name, float(value)))
    # Shifts the loader applies while reading (resize=, limit= of a folder) go first, so that a folder
    # is decoded at the asked size instead of at full size and resized afterwards.
    shifts.sort(key=lambda item: item[0] not in info.load_options)
    return str(DatasetSpec(dataset=dataset, shifts=tuple(shifts), argument=argument))


def params_from_state(strategy: str) -> dict[str, Any]:
    state = st.session_state
    return {f.name: state.get(K.param(strategy, f.name), f.default) for f in form_fields(STRATEGIES[strategy].Config)}


def config_from_state() -> RunConfig:
    """The run the Train page would start. Raises TransferLabError for invalid settings."""
    state = st.session_state
    strategy = state[K.STRATEGY]
    return RunConfig(source=spec_from_state("source"), target=spec_from_state("target"), strategy=strategy,
                     params=params_from_state(strategy), target_labels=int(state[K.BUDGET]),
                     epochs=int(state[K.EPOCHS]), batch_size=int(state[K.BATCH_SIZE]), lr=float(state[K.LR]),
                     model=state.get(K.MODEL, "auto"), optimizer=state.get(K.OPTIMIZER, "adam"),
                     lr_schedule=state.get(K.LR_SCHEDULE, "constant"), momentum=float(state.get(K.MOMENTUM, 0.9)),
                     seed=seed(), data_dir=data_dir_setting())


def apply_config(config: RunConfig) -> None:
    """Fill the Data and Train pages' widgets with ``config`` (used by presets).

    The data directory is restored too, except that a config on built-in data only with the
    default directory (every preset) leaves the user's setting alone: it does not matter there."""
    state = st.session_state
    updates = {**spec_state("source", config.source), **spec_state("target", config.target),
               **param_state(config.strategy, config.params),
               K.STRATEGY: config.strategy, K.BUDGET: config.target_labels, K.EPOCHS: config.epochs,
               K.BATCH_SIZE: config.batch_size, K.LR: float(config.lr), K.SEED: config.seed,
               K.MODEL: config.model, K.OPTIMIZER: config.optimizer, K.LR_SCHEDULE: config.lr_schedule,
               K.MOMENTUM: float(config.momentum)}
    if config.data_dir or not all(DATASETS[parse_spec(s).dataset].builtin for s in (config.source, config.target)):
        updates[K.DATA_DIR] = config.data_dir
    for key, value in updates.items():
        state[key] = value


def field_widget(f: FieldInfo, key: str, label: str | None = None, step: float | None = None) -> None:
    """The widget for one config field (see ``tlcore.config.form_fields``): a checkbox for a
    bool, a select box for choices, else a number input within the field's range."""
    label = label or f.name
    if f.type is bool:
        st.checkbox(label, key=key, help=f.help)
    elif f.choices:
        st.selectbox(label, list(f.choices), key=key, help=f.help)
    elif f.type is int:
        st.number_input(label, min_value=None if f.min is None else int(f.min),
                        max_value=None if f.max is None else int(f.max), step=int(step or 1), key=key, help=f.help)
    else:
        if step is None:  # a tenth of the default's order of magnitude: 1.0 → 0.1, 0.003 → 0.0001
            magnitude = abs(float(f.default)) or 1.0
            step = 10.0 ** (math.floor(math.log10(magnitude)) - 1)
        st.number_input(label, min_value=None if f.min is None else float(f.min),
                        max_value=None if f.max is None else float(f.max), step=float(step), format="%.4g",
                        key=key, help=f.help)


def flash(message: str | None = None, kind: str = "success") -> None:
    """Queue ``message`` ("success", "warning" or "error") for the next run, or show (and clear)
    the queued one."""
    if message is not None:
        st.session_state[K.FLASH] = (kind, message)
    elif st.session_state.get(K.FLASH):
        kind, message = st.session_state.pop(K.FLASH)
        getattr(st, kind)(message)


def split_choice(choice: str) -> tuple[str, str | None]:
    """A select-box choice as (dataset name, argument): ``"folder:pets/amazon"`` → ``("folder",
    "pets/amazon")``, ``"mnist"`` → ``("mnist", None)``."""
    name, _, argument = choice.partition(":")
    info = DATASETS.get(name)
    if info is not None and info.takes_argument and argument.strip():
        return name, argument.strip()
    return choice, None


def dataset_info(choice: str):
    """The registry entry (``tlcore.data.registry.DatasetInfo``) of a select-box choice."""
    return DATASETS[split_choice(choice)[0]]


def dataset_help() -> str:
    """The select box's help: one line per dataset (a folder choice once, as ``folder``)."""
    names = dict.fromkeys(split_choice(choice)[0] for choice in dataset_choices())
    if "folder" not in names:
        names["folder"] = None
    return "\n\n".join(f"**{name}**: {DATASETS[name].description}" for name in names)


def data_dir_setting() -> str:
    """The Data page's data directory as typed ("" = the default, ``tlcore.paths.default_data_dir``)."""
    return str(st.session_state.get(K.DATA_DIR, "") or "").strip()


def data_dir_key(data_dir: str | None) -> str:
    """The data directory as a cache key: the setting when None, and the default spelled out (it
    follows ``$TRANSFER_LAB_HOME`` / ``$TRANSFER_LAB_DATA``, so "" alone would be ambiguous)."""
    data_dir = data_dir_setting() if data_dir is None else data_dir.strip()
    return data_dir or str(default_data_dir())
