"""What the pages share: session state, cached engine calls, background projections, charts.

Pages stay thin: they read state, call the engine through the helpers here
and render. Nothing here trains a model or computes a metric itself; the
engine (``tlcore``) does. Data and metrics are cached with ``st.cache_data``
(keyed by the run store path and run id where a run is involved); a model is
never cached: the Inspect page rebuilds a stored run from its checkpoint.
"""
from __future__ import annotations

import base64
import io
import math
import statistics
import threading
import time
from contextlib import contextmanager
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd  # imported here, in the script thread, before any warm-up thread can import it half-way
import plotly.graph_objects as go
import streamlit as st

from tlcore.api import baseline_config, load_trained
from tlcore.config import FieldInfo, RunConfig, form_fields
from tlcore.data import DATASETS, SHIFTS, DatasetSpec, DomainPair, make_pair, parse_spec
from tlcore.data.domain import as_float
from tlcore.embed import project_pca
from tlcore.errors import (BudgetError, ClassMismatchError, DatasetUnavailableError, RepresentationMismatchError,
                           TransferLabError)
from tlcore.inspection import Cloud, GapReport, RunInspection, grid_bounds, input_cloud, input_gap, inspect_trainer
from tlcore.paths import default_data_dir, default_store_path
from tlcore.presets import PRESETS
from tlcore.runs import ACTIVE_STATUSES, RunRecord, RunStore
from tlcore.strategies import STRATEGIES
from tlcore.worker import get_worker

from pages import _keys as K
from pages._umap_worker import service as umap_service

# --- look ------------------------------------------------------------------------------------
SOURCE_COLOUR, TARGET_COLOUR = "#1f6fb4", "#e8710a"
DOMAIN_COLOURS = (SOURCE_COLOUR, TARGET_COLOUR)
DOMAIN_NAMES = ("source", "target")
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
BAD, GOOD = "#d62728", "#2ca02c"
FONT = dict(size=16)
LIVE_INTERVAL_S = 0.5       # the Train page's live refresh
PENDING_INTERVAL_S = 1.0    # the Inspect page's check for a finished baseline or UMAP
FIRST_POINT_WAIT_S = 0.6    # after Start, the first draw waits this long at most for the first point


def class_colour(c: int) -> str:
    return CLASS_COLOURS[c % len(CLASS_COLOURS)]


def base_layout(title: str | None = None, height: int = 340) -> dict:
    """A projector-friendly layout: large type, tight margins, legend on top."""
    return {"title": {"text": title, "font": {"size": 18}, "y": 0.98, "yanchor": "top"} if title else None,
            "height": height, "font": FONT, "margin": {"l": 10, "r": 10, "t": 80 if title else 40, "b": 10},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0,
                       "font": {"size": 14}}}


def layout(fig: go.Figure, title: str | None = None, height: int = 340, **kw) -> go.Figure:
    fig.update_layout(**base_layout(title, height), **kw)
    return fig


# --- the app around a page -------------------------------------------------------------------
_app_run = threading.local()


@contextmanager
def app_page_run():
    """Marks that app.py is running a page through ``st.navigation`` (see :func:`inside_app`)."""
    _app_run.active = True
    try:
        yield
    finally:
        _app_run.active = False


def inside_app() -> None:
    """Every page calls this first.

    While no session has run app.py yet, Streamlit treats a folder called ``pages/`` next to
    the main script as its older, folder-based navigation: the first request after the
    server starts that names a page (a refresh of ``/train?run=…``) runs that file alone,
    without app.py's state, sidebar and navigation. Then run the app, which draws the same
    page through ``st.navigation`` (from then on the folder is ignored), and end the bare run.
    """
    if getattr(_app_run, "active", False):
        return
    import app

    app.main()
    st.stop()


# --- state ------------------------------------------------------------------------------------
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
                     model=state.get(K.MODEL, "auto"),
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
               K.MODEL: config.model}
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


def _cache_dir(data_dir: str | None) -> str:
    """The data directory as a cache key: the setting when None, and the default spelled out (it
    follows ``$TRANSFER_LAB_HOME`` / ``$TRANSFER_LAB_DATA``, so "" alone would be ambiguous)."""
    data_dir = data_dir_setting() if data_dir is None else data_dir.strip()
    return data_dir or str(default_data_dir())


# --- runs ---------------------------------------------------------------------------------------
_stores: dict[str, RunStore] = {}


def store() -> RunStore:
    """The run store of this app (``$TRANSFER_LAB_HOME/runs.sqlite`` or the user data directory).

    One :class:`RunStore` per database path, reused: it holds no connection (each call opens
    its own), and building one checks the schema, which costs connections that a live refresh
    should not pay for every half second.
    """
    path = str(default_store_path())
    if path not in _stores:
        _stores[path] = RunStore(path)
    return _stores[path]


def attach(run_id: str | None) -> None:
    """Make ``run_id`` the run the Train page shows (events are read again from the store)."""
    state = st.session_state
    state[K.RUN_ID] = run_id
    state[K.EVENTS] = []
    state[K.LAST_SEQ] = -1
    state[K.POLL_MS] = []
    state[K.FIRST_POINT_S] = None
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]


def start_run(config: RunConfig, tags: dict | None = None) -> str:
    """Start ``config`` in the background worker and attach the Train page to it."""
    run_id = get_worker().start_run(config, store(), tags=tags)
    attach(run_id)
    st.session_state[K.STARTED_AT] = time.perf_counter()
    return run_id


def data_path_note(metrics: dict) -> str:
    """How a finished run's data reached the model: resident or streamed, and on a GPU the batch
    size that fitted (see ``tlcore.api.preprocessing_record``)."""
    mode = metrics.get("data_mode")
    words = {"resident": "data resident on the device (batched by indexing)",
             "stream": "data streamed from disk through a DataLoader"}.get(mode, "")
    fit = metrics.get("batch_size_fit")
    if isinstance(fit, dict) and fit.get("chosen") is not None:
        if fit["chosen"] < fit["requested"]:
            words += f"; batch size reduced from {fit['requested']} to {fit['chosen']} to fit GPU memory"
        else:
            words += f"; batch size {fit['chosen']} fits GPU memory"
    words = words.lstrip("; ")
    return words[:1].upper() + words[1:]


def model_choices(kind: str) -> list[str]:
    """``auto`` and the models that take ``kind`` ("vector" or "image") inputs."""
    from tlcore.models import MODELS
    return ["auto", *[name for name, info in MODELS.items() if kind in info.kinds]]


def model_note(name: str, kind: str) -> str:
    """What a model choice means for the run: its description and, for an ImageNet-pretrained
    backbone, whether its weights are in the torch cache or will be downloaded at Start."""
    from tlcore.models import MODELS
    if name == "auto":
        return f"auto: {'an MLP' if kind == 'vector' else 'the LeNet-style CNN'} for this pair"
    info = MODELS[name]
    note = f"{name}: {info.description}"
    if "random_init" not in name and name in ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"):
        from tlcore.backbones import weights_file
        path, url, _ = weights_file(name)
        note += (f". Weights in the torch cache ({path.name})." if path.is_file() else
                 f". Weights not cached yet: Start downloads them ({url}); offline, the run stops with a clear "
                 f"error, and {name}_random_init trains without them.")
    return note


def missing_downloads(config: RunConfig, specs: Sequence[str] = ()) -> list[str]:
    """The torchvision datasets of ``config`` (its source and target, or ``specs`` when given)
    with files missing from its data directory."""
    from tlcore.data.torchvision_data import SOURCES, dataset_status
    names: list[str] = []
    for spec in (specs or (config.source, config.target)):
        name = parse_spec(spec).dataset
        if name in SOURCES and name not in names and any(
                s.state == "missing" for s in dataset_status(name, config.data_dir or None)):
            names.append(name)
    return names


def missing_downloads_message(names: Sequence[str], data_dir: str, then: str) -> str:
    where = data_dir or "the default data directory"
    return (f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} not downloaded into {where} yet. "
            "Download on the Data page (Data sources → Download, with a progress bar), or run "
            f"`tlcore download {' '.join(names)}`; then {then}.")


def start_from_state() -> None:
    """Start button callback: start the configured run, or keep the error to show. A dataset
    whose files are missing is not downloaded here (in the page's thread, with no progress):
    the Data page downloads it with a progress bar and a Stop button."""
    st.session_state[K.TRAIN_ERROR] = None
    try:
        config = config_from_state()
        missing = missing_downloads(config)
        if missing:
            st.session_state[K.TRAIN_ERROR] = missing_downloads_message(missing, config.data_dir,
                                                                        "press Start again")
            return
        start_run(config)
    except TransferLabError as exc:
        st.session_state[K.TRAIN_ERROR] = str(exc)


def stop_attached() -> None:
    """Stop button callback: stop the attached run; the worker records it as stopped."""
    run_id = st.session_state.get(K.RUN_ID)
    if not run_id:
        return
    worker = get_worker()
    if worker.job(run_id) is None:
        st.session_state[K.TRAIN_ERROR] = (f"run {run_id} is not running in this app's process "
                                           "(it was started elsewhere), so it cannot be stopped from here")
        return
    worker.stop(run_id, wait=1.5)


def apply_preset(name: str) -> str:
    """Fill the pages with preset ``name`` and start it, plus the strategies it compares with."""
    preset = PRESETS[name]
    apply_config(preset.config)
    run_id = start_run(preset.config, tags={"preset": name})
    baseline = baseline_config(preset.config)  # run_experiment trains it itself
    automatic = baseline.strategy if baseline is not None else None
    for strategy in preset.compare_with:
        if strategy != automatic and strategy != preset.config.strategy:
            get_worker().start_run(preset.config.replace(strategy=strategy, params={}), store(),
                                   tags={"preset": name, "compare_with": run_id})
    return run_id


def run_preset(name: str) -> None:
    """Preset button callback (it runs before any widget is drawn, so it may fill them all):
    start the preset, then let the Lab page switch to Train."""
    try:
        apply_preset(name)
    except TransferLabError as exc:
        flash(f"The preset could not start: {exc}", kind="error")
    else:
        st.session_state[K.GOTO_TRAIN] = True


def pull_events(run_id: str) -> tuple[list[dict], int]:
    """Read the attached run's new events into session state (incremental, one query);
    return all events so far and how many were new."""
    state = st.session_state
    new = store().events(run_id, after_seq=state.get(K.LAST_SEQ, -1))
    if new:
        state[K.EVENTS] = state.get(K.EVENTS, []) + new
        state[K.LAST_SEQ] = new[-1]["seq"]
    return state.get(K.EVENTS, []), len(new)


def run_label(rec: RunRecord) -> str:
    acc = rec.metrics.get("target_accuracy")
    acc_text = f" · target acc {acc:.3f}" if isinstance(acc, (int, float)) else ""
    return f"{rec.id} · {rec.strategy} · {rec.source} → {rec.target} · seed {rec.seed} · {rec.status}{acc_text}"


def runs_frame(records: Sequence[RunRecord]):
    """Stored runs as a table for st.dataframe (newest first)."""
    rows = []
    for r in records:
        m = r.metrics
        rows.append({
            "id": r.id, "created": pd.Timestamp(r.created_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "status": r.status, "strategy": r.strategy, "source": r.source, "target": r.target,
            "seed": r.seed, "labels/class": r.target_labels,
            "target acc": m.get("target_accuracy"), "source acc": m.get("source_accuracy"),
            "NTG": m.get("ntg"), "target_only acc": m.get("target_only_accuracy"),
            "steps": m.get("steps"), "seconds": m.get("elapsed_s"),
        })
    return pd.DataFrame(rows, columns=["id", "created", "status", "strategy", "source", "target", "seed",
                                       "labels/class", "target acc", "source acc", "NTG", "target_only acc",
                                       "steps", "seconds"])


RUN_COLUMNS = {
    "target acc": st.column_config.NumberColumn(format="%.3f"),
    "source acc": st.column_config.NumberColumn(format="%.3f"),
    "NTG": st.column_config.NumberColumn(format="%+.3f", help="negative-transfer gap: target error with the "
                                         "source − without it (positive = the source hurt)"),
    "target_only acc": st.column_config.NumberColumn(format="%.3f"),
    "seconds": st.column_config.NumberColumn(format="%.1f"),
}


# --- cached engine calls ---------------------------------------------------------------------------
def load_pair(source: str, target: str, seed: int, budget: int, data_dir: str | None = None) -> DomainPair:
    """``tlcore.data.make_pair``, cached; raises TransferLabError for a pair that cannot be made.

    ``data_dir`` None means the Data page's setting (:func:`data_dir_setting`); "" the default."""
    return _load_pair(source, target, seed, budget, _cache_dir(data_dir))


@st.cache_data(show_spinner=False, max_entries=16)
def _load_pair(source: str, target: str, seed: int, budget: int, data_dir: str) -> DomainPair:
    # "auto", as a run: a folder too large to hold resident is streamed (images decoded on access)
    return make_pair(source, target, seed=seed, target_labels=budget, data_dir=data_dir or None, data_mode="auto")


def pair_gap(source: str, target: str, seed: int, data_dir: str | None = None) -> tuple[GapReport, Cloud]:
    """The gap between raw source and target inputs, and a 2-D view of them (PCA for images)."""
    return _pair_gap(source, target, seed, _cache_dir(data_dir))


@st.cache_data(show_spinner=False, max_entries=16)
def _pair_gap(source: str, target: str, seed: int, data_dir: str) -> tuple[GapReport, Cloud]:
    pair = _load_pair(source, target, seed, 0, data_dir)
    return input_gap(pair, seed=seed), input_cloud(pair, max_points=500, seed=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def run_inspection(store_path: str, run_id: str, updated_at: float) -> RunInspection:
    """Features, predictions, feature-space gap and decision grid of a stored run (rebuilt from
    its checkpoint; the model itself is not kept)."""
    trainer, artifacts = load_trained(run_id, RunStore(store_path))
    pair = trainer.pair
    bounds = None
    if pair.kind == "vector" and pair.input_shape == (2,):
        import torch
        bounds = grid_bounds(torch.cat([pair.source.x_train, pair.source.x_test,
                                        pair.target.x_train, pair.target.x_test]))
    return inspect_trainer(trainer, artifacts, seed=trainer.config.seed, grid_bounds_=bounds)


@st.cache_data(show_spinner=False, max_entries=32)
def pca_of_run(store_path: str, run_id: str, updated_at: float) -> np.ndarray:
    return project_pca(run_inspection(store_path, run_id, updated_at).features)


# --- UMAP in the background ----------------------------------------------------------------------
def umap_of_run(store_path: str, run_id: str, updated_at: float, features: np.ndarray, seed: int) -> Future:
    """The UMAP of a run's features, computed once per run in the helper process (see
    ``pages._umap_worker``) while the page shows PCA; a future of ``(coords, seconds)``."""
    return umap_service().project((store_path, run_id, updated_at), features, seed)


def umap_done(store_path: str, run_id: str, updated_at: float) -> bool:
    return umap_service().done((store_path, run_id, updated_at))


# --- live training view ----------------------------------------------------------------------------
def series(events: Sequence[dict]) -> dict[str, Any]:
    """Events as plottable series: loss terms per step, accuracies and extras per evaluation."""
    steps, losses = [], {}
    eval_steps, src_acc, tgt_acc, extras = [], [], [], {}
    started, phases = None, []
    for e in events:
        kind = e["kind"]
        if kind == "started":
            started = e
        elif kind == "step":
            if phases and phases[-1][1] != e["phase"]:  # a new phase began after the previous step event
                phases.append((steps[-1], e["phase"]))
            elif not phases:
                phases.append((0, e["phase"]))
            steps.append(e["step"])
            for name, value in e["losses"].items():
                if name != "total":
                    losses.setdefault(name, [None] * (len(steps) - 1)).append(value)
            for name in losses:
                if len(losses[name]) < len(steps):
                    losses[name].append(None)
        elif kind == "eval":
            eval_steps.append(e["step"])
            src_acc.append(e["source_accuracy"])
            tgt_acc.append(e["target_accuracy"])
            for name, value in e["extras"].items():
                extras.setdefault(name, [None] * (len(eval_steps) - 1)).append(value)
            for name in extras:
                if len(extras[name]) < len(eval_steps):
                    extras[name].append(None)
    return {"started": started, "phases": phases[1:], "steps": steps, "losses": losses, "eval_steps": eval_steps,
            "source_accuracy": src_acc, "target_accuracy": tgt_acc, "extras": extras}


def progress(events: Sequence[dict], status: str) -> tuple[float, str]:
    """(fraction done, "step 120 / 480 · 3.1 s elapsed · ETA 9 s") from the latest events."""
    last = next((e for e in reversed(events) if e["kind"] in ("step", "eval")), None)
    result = next((e for e in reversed(events) if e["kind"] == "result"), None)
    if result is not None:
        total = last["total_steps"] if last else result["steps"]
        return (min(1.0, result["steps"] / max(1, total)),
                f"{result['status']} after {result['steps']} / {total} steps · {result['elapsed_s']:.1f} s")
    if last is None:
        return 0.0, "starting…" if status in ACTIVE_STATUSES else status
    step, total, elapsed = last["step"], last["total_steps"], last["elapsed_s"]
    eta = elapsed / max(step, 1) * (total - step)
    return (min(1.0, step / max(1, total)),
            f"step {step} / {total} · {elapsed:.1f} s elapsed · ETA {eta:.0f} s")


LOSS_NAMES = {"task": "task (cross-entropy)", "mmd": "MMD²", "coral": "CORAL", "domain": "domain (discriminator)"}


def _lines(traces: list[dict], title: str, x_title: str, y_title: str, y_range=None, height=330,
           phases: Sequence[tuple[int, str]] = ()) -> dict:
    # A plain figure dict, which st.plotly_chart validates once: a few ms in all, against ~30 ms for a
    # go.Figure built with update_layout. This keeps the live refresh cheap.
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": step, "x1": step, "y0": 0, "y1": 1,
               "line": {"dash": "dot", "color": "#777", "width": 2}} for step, _ in phases]
    notes = [{"xref": "x", "yref": "paper", "x": step, "y": 1, "text": name, "showarrow": False,
              "xanchor": "left", "yanchor": "top", "font": {"size": 14, "color": "#555"}} for step, name in phases]
    if not traces:  # plotly refuses a figure dict without data
        traces = [{"type": "scatter", "x": [], "y": [], "showlegend": False}]
    return {"data": traces, "layout": {
        **base_layout(title, height), "showlegend": True, "shapes": shapes, "annotations": notes,
        "xaxis": {"title": {"text": x_title}}, "yaxis": {"title": {"text": y_title}, "range": y_range},
        "uirevision": "live"}}  # keeps a user's zoom across refreshes


MAX_CURVE_POINTS = 500  # longer curves are thinned for display, so a refresh stays cheap on long runs


def _thin(values: list, every: int) -> list:
    """Every ``every``-th value, always with the first and the last."""
    if every <= 1 or len(values) <= 2:
        return values
    kept = values[::every]
    return kept + values[-1:] if (len(values) - 1) % every else kept


def thinned(s: dict) -> dict:
    """``series`` with every curve cut to about MAX_CURVE_POINTS points (keeping the last one)."""
    step_every = math.ceil(len(s["steps"]) / MAX_CURVE_POINTS)
    eval_every = math.ceil(len(s["eval_steps"]) / MAX_CURVE_POINTS)
    if step_every <= 1 and eval_every <= 1:
        return s
    return {**s, "steps": _thin(s["steps"], step_every),
            "losses": {k: _thin(v, step_every) for k, v in s["losses"].items()},
            "eval_steps": _thin(s["eval_steps"], eval_every),
            "source_accuracy": _thin(s["source_accuracy"], eval_every),
            "target_accuracy": _thin(s["target_accuracy"], eval_every),
            "extras": {k: _thin(v, eval_every) for k, v in s["extras"].items()}}


def live_figures(events: Sequence[dict]) -> list[tuple[str, dict]]:
    """The Train page's charts, as plotly figure dicts: loss terms; source and target accuracy;
    domain-discriminator accuracy (when the strategy has one) and feature MMD² over time."""
    s = thinned(series(events))
    figs = []
    loss_traces = [{"type": "scatter", "mode": "lines", "x": s["steps"], "y": v, "name": LOSS_NAMES.get(k, k),
                    "line": {"width": 3}} for k, v in s["losses"].items()]
    figs.append(("losses", _lines(loss_traces, "Loss terms (raw, before weighting)", "step", "loss",
                                  phases=s["phases"])))
    acc_traces = [
        {"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": s["source_accuracy"],
         "name": "source test", "line": {"width": 3, "color": SOURCE_COLOUR}},
        {"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": s["target_accuracy"],
         "name": "target test", "line": {"width": 3, "color": TARGET_COLOUR}},
    ]
    figs.append(("accuracy", _lines(acc_traces, "Accuracy", "step", "accuracy", y_range=[0, 1.02],
                                    phases=s["phases"])))
    extras = s["extras"]
    if "domain_accuracy" in extras:
        figs.append(("domain", _lines(
            [{"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": extras["domain_accuracy"],
              "name": "discriminator", "line": {"width": 3, "color": "#6a3d9a"}},
             {"type": "scatter", "mode": "lines", "x": [s["eval_steps"][0], s["eval_steps"][-1]] if s["eval_steps"]
              else [], "y": [0.5, 0.5], "name": "chance (0.5)", "line": {"dash": "dash", "color": "#888"}}],
            "Domain-discriminator accuracy (0.5 = chance)", "step", "accuracy",
            y_range=[0.3, 1.02])))
    if "feature_mmd2" in extras:
        figs.append(("mmd", _lines(
            [{"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": extras["feature_mmd2"],
              "name": "feature MMD²", "line": {"width": 3, "color": "#33a02c"}}],
            "Feature MMD², source vs target (unbiased: ≈ 0 when aligned)", "step", "MMD²")))
    return figs


def ntg_badge(metrics: dict, over_seeds: NTGSummary | None = None) -> None:
    """Show the negative-transfer gap when the run has one (red when positive) and, given
    ``over_seeds`` (``tlcore.seeds.ntg_over_seeds`` of the run), its mean and spread over the
    seeds of the run's configuration (see :func:`ntg_seeds_markdown`)."""
    ntg = metrics.get("ntg")
    if not isinstance(ntg, (int, float)):
        return
    base = metrics.get("target_only_accuracy")
    verdict = "negative transfer: the source hurt" if ntg > 0 else "the source helped"
    colour = "red" if ntg > 0 else "green"
    st.markdown(f"#### :{colour}[NTG {ntg:+.3f}] — {verdict}" + (" (this seed)" if over_seeds else ""))
    st.caption(f"NTG = target error with the source − target error of target_only "
               f"(target_only accuracy {base:.3f}, this run {metrics.get('target_accuracy', float('nan')):.3f}).")
    if over_seeds is not None:
        st.markdown(ntg_seeds_markdown(over_seeds))


# --- data views ------------------------------------------------------------------------------------
def png_data_uri(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_uint8_image(x) -> np.ndarray:
    """One image tensor (C, H, W) as (H, W, 3) uint8 for display."""
    arr = as_float(x).clamp(0, 1).mul(255).round().byte().numpy()
    arr = np.repeat(arr, 3, axis=0) if arr.shape[0] == 1 else arr[:3]
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def image_grid_figure(x, rows: list[list[int]], class_names: Sequence[str], title: str, gap: int = 2) -> go.Figure:
    """One row of example images per class, with the class names along the left edge."""
    per_row = max((len(r) for r in rows), default=0)
    if per_row == 0:
        return layout(go.Figure(), title)
    h, w = x.shape[-2], x.shape[-1]
    canvas = np.full((len(rows) * (h + gap), per_row * (w + gap), 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, idx in enumerate(row):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = to_uint8_image(x[idx])
    fig = go.Figure(go.Image(source=png_data_uri(canvas), hoverinfo="skip"))
    fig.update_yaxes(tickvals=[i * (h + gap) + h / 2 for i in range(len(rows))], ticktext=list(class_names),
                     showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    return layout(fig, title, height=max(260, 46 * len(rows) + 60))


def points_figure(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str,
                  domain: np.ndarray | None = None, by: str = "class", sizes: np.ndarray | None = None,
                  height: int = 420) -> go.Figure:
    """A scatter of 2-D points coloured by class (or by domain), with one trace per group."""
    fig = go.Figure()
    groups = []
    if by == "domain" and domain is not None:
        groups = [(np.flatnonzero(domain == d), DOMAIN_NAMES[d], DOMAIN_COLOURS[d]) for d in (0, 1)]
    else:
        groups = [(np.flatnonzero(labels == c), str(name), class_colour(c)) for c, name in enumerate(class_names)]
    for rows, name, colour in groups:
        if len(rows) == 0:
            continue
        marker: dict[str, Any] = {"color": colour, "size": 7, "opacity": 0.7}
        if name == DOMAIN_NAMES[1]:  # open diamonds keep the source visible where the domains overlap
            marker.update(symbol="diamond-open", line={"width": 1.5})
        if sizes is not None:
            marker["size"] = np.clip(4 + 6 * sizes[rows], 3, 40).tolist()
            marker["line"] = {"width": 0.5, "color": "white"}
        fig.add_trace(go.Scattergl(x=points[rows, 0], y=points[rows, 1], mode="markers", name=name, marker=marker))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return layout(fig, title, height=height)


def class_balance_figure(source_counts: Sequence[int], target_counts: Sequence[int],
                         class_names: Sequence[str]) -> go.Figure:
    names = [str(c) for c in class_names]
    fig = go.Figure([go.Bar(x=names, y=list(source_counts), name="source", marker_color=SOURCE_COLOUR),
                     go.Bar(x=names, y=list(target_counts), name="target", marker_color=TARGET_COLOUR)])
    fig.update_layout(barmode="group", xaxis={"title": "class", "type": "category"},
                      yaxis_title="training examples")
    return layout(fig, "Class balance (training sets)", height=320)


def cloud_figure(cloud: Cloud, class_names: Sequence[str], title: str) -> go.Figure:
    return points_figure(cloud.points, cloud.label, class_names, title, domain=cloud.domain, by="domain")


# --- inspection views --------------------------------------------------------------------------------
def embedding_figure(coords: np.ndarray, ins: RunInspection, by_class: bool, title: str) -> go.Figure:
    """A 2-D embedding of test features; hover tells domain, index, class and prediction, and
    each point's ``customdata[0]`` is its row in ``ins`` (for a selection)."""
    names = ins.class_names
    fig = go.Figure()
    if by_class:
        groups = [(np.flatnonzero(ins.label == c), str(n), class_colour(c)) for c, n in enumerate(names)]
    else:
        groups = [(np.flatnonzero(ins.domain == d), DOMAIN_NAMES[d], DOMAIN_COLOURS[d]) for d in (0, 1)]
    for rows, name, colour in groups:
        if len(rows) == 0:
            continue
        custom = [[int(r), DOMAIN_NAMES[ins.domain[r]], int(ins.index[r]), str(names[ins.label[r]]),
                   str(names[ins.prediction[r]])] for r in rows]
        # Source: filled circles; target: open diamonds, so that overlapping domains both stay visible.
        symbols = ["circle" if ins.domain[r] == 0 else "diamond-open" for r in rows]
        fig.add_trace(go.Scattergl(
            x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=name, customdata=custom,
            marker={"color": colour, "size": 7, "opacity": 0.65, "symbol": symbols, "line": {"width": 1.5}},
            hovertemplate="%{customdata[1]} #%{customdata[2]}<br>class %{customdata[3]}"
                          "<br>predicted %{customdata[4]}<extra></extra>"))
    fig.update_layout(xaxis={"showticklabels": False}, yaxis={"showticklabels": False}, dragmode="select",
                      clickmode="event+select")
    return layout(fig, title, height=440)


def selected_row(event: Any, fig: go.Figure) -> int | None:
    """The inspection row of the first point selected in an embedding chart, if any."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    p = points[0]
    custom = p.get("customdata")
    if isinstance(custom, (list, tuple)) and custom:
        return int(custom[0])
    try:
        return int(fig.data[p["curve_number"]].customdata[p["point_index"]][0])
    except (KeyError, IndexError, TypeError):
        return None


def boundary_figure(grid, pair: DomainPair, title: str, weights: np.ndarray | None = None) -> go.Figure:
    """The decision regions over the 2-D plane, with source (circles) and target (crosses)
    test points coloured by their true class; source training points sized by importance
    weights when given."""
    names = pair.class_names
    fig = go.Figure()
    if grid.proba.shape[2] == 2:
        fig.add_trace(go.Contour(
            x=grid.xs, y=grid.ys, z=grid.proba[:, :, 1], zmin=0, zmax=1, showscale=False, hoverinfo="skip",
            colorscale=[[0, "#9ec5ea"], [0.5, "#ffffff"], [1, "#f7c08a"]], opacity=0.85,
            contours={"start": 0, "end": 1, "size": 0.1}, line={"width": 0}, name="p(class 1)"))
        fig.add_trace(go.Contour(x=grid.xs, y=grid.ys, z=grid.proba[:, :, 1], showscale=False, hoverinfo="skip",
                                 contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                                 line={"width": 3, "color": "#333"}, name="boundary"))
    else:
        scale = [[i / max(1, len(names) - 1), class_colour(i)] for i in range(len(names))]
        fig.add_trace(go.Heatmap(x=grid.xs, y=grid.ys, z=grid.predicted, colorscale=scale, zmin=0,
                                 zmax=len(names) - 1, showscale=False, opacity=0.3, hoverinfo="skip"))
    src, tgt = pair.source, pair.target
    if weights is not None:
        xs = src.x_train.numpy()
        fig.add_trace(go.Scattergl(
            x=xs[:, 0], y=xs[:, 1], mode="markers", name="source (sized by importance weight)",
            marker={"size": np.clip(3 + 5 * weights, 2, 30).tolist(),
                    "color": [class_colour(c) for c in src.y_train.tolist()],
                    "line": {"width": 0.5, "color": "#222"}, "opacity": 0.8}))
    else:
        xs = src.x_test.numpy()
        fig.add_trace(go.Scattergl(x=xs[:, 0], y=xs[:, 1], mode="markers", name="source",
                                   marker={"size": 6, "color": [class_colour(c) for c in src.y_test.tolist()],
                                           "line": {"width": 0.5, "color": "#222"}}))
    xt = tgt.x_test.numpy()
    fig.add_trace(go.Scattergl(x=xt[:, 0], y=xt[:, 1], mode="markers", name="target",
                               marker={"size": 7, "symbol": "x",
                                       "color": [class_colour(c) for c in tgt.y_test.tolist()]}))
    fig.update_xaxes(range=[float(grid.xs[0]), float(grid.xs[-1])])
    fig.update_yaxes(range=[float(grid.ys[0]), float(grid.ys[-1])], scaleanchor="x", scaleratio=1)
    return layout(fig, title, height=460)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    counts = np.asarray(confusion)
    recall = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [str(c) for c in class_names]
    fig = go.Figure(go.Heatmap(z=recall, x=names, y=names, text=counts, texttemplate="%{text}", zmin=0, zmax=1,
                               colorscale="Blues", showscale=False,
                               hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class", type="category")
    fig.update_xaxes(title="predicted class", type="category")
    return layout(fig, title, height=380)


def per_class_figure(named: list[tuple[str, Sequence[float], str]], class_names: Sequence[str]) -> go.Figure:
    names = [str(c) for c in class_names]
    fig = go.Figure([go.Bar(x=names, y=list(values), name=label, marker_color=colour)
                     for label, values, colour in named])
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.02], "title": "accuracy"},
                      xaxis={"title": "target class", "type": "category"})
    return layout(fig, "Per-class accuracy on the target test set", height=340)


# --- comparison views ---------------------------------------------------------------------------------
def strategy_figure(summaries, title: str, reference: float | None = None) -> go.Figure:
    names = [s.strategy for s in summaries]
    fig = go.Figure(go.Bar(
        x=names, y=[s.mean for s in summaries], marker_color=SOURCE_COLOUR,
        error_y={"type": "data", "array": [s.std for s in summaries], "visible": any(s.runs > 1 for s in summaries)},
        text=[f"{s.mean:.3f}" + (f" ± {s.std:.3f} (n={s.runs})" if s.runs > 1 else "") for s in summaries],
        textposition="outside", hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="#555",
                      annotation_text=f"target_only {reference:.3f}", annotation_position="top right")
    fig.update_layout(yaxis={"range": [0, 1.1], "title": "target accuracy"})
    return layout(fig, title, height=380)


def ntg_figure(summaries, title: str) -> go.Figure:
    rows = [s for s in summaries if s.ntg_mean is not None]
    fig = go.Figure(go.Bar(
        x=[s.strategy for s in rows], y=[s.ntg_mean for s in rows],
        marker_color=[BAD if s.ntg_mean > 0 else GOOD for s in rows],
        error_y={"type": "data", "array": [s.ntg_std for s in rows], "visible": any(s.ntg_runs > 1 for s in rows)},
        text=[f"{s.ntg_mean:+.3f}" for s in rows], textposition="outside"))
    fig.add_hline(y=0, line_color="#333")
    fig.update_layout(yaxis={"title": "NTG (positive = negative transfer)"})
    return layout(fig, title, height=340)


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- NTG over seeds --------------------------------------------------------------------------------
import re  # noqa: E402 - (this section and the next are the export and NTG-over-seeds helpers)

from tlcore.ntg import NEGATIVE_TRANSFER, POSITIVE_TRANSFER, WITHIN_NOISE, NTGSummary  # noqa: E402

NTG_LABEL_COLOURS = {NEGATIVE_TRANSFER: "red", POSITIVE_TRANSFER: "green", WITHIN_NOISE: "gray"}
NTG_LABEL_HEX = {NEGATIVE_TRANSFER: BAD, POSITIVE_TRANSFER: GOOD, WITHIN_NOISE: "#7f7f7f"}
ONE_SEED = "1 seed: run more seeds (change the seed in the sidebar) to see the spread"


def ntg_seeds_text(summary: NTGSummary) -> str:
    """``NTG +0.120 ± 0.030 over 5 seeds (95% CI [+0.083, +0.157]): negative transfer`` (± is the
    sample standard deviation), or :data:`ONE_SEED`."""
    if summary.n < 2:
        return ONE_SEED
    verdict = {NEGATIVE_TRANSFER: "negative transfer (the source hurt)",
               POSITIVE_TRANSFER: "positive transfer (the source helped)",
               WITHIN_NOISE: "within noise (the interval contains 0)"}[summary.label]
    return (f"NTG {summary.mean:+.3f} ± {summary.std:.3f} over {summary.n} seeds "
            f"({summary.confidence:.0%} CI [{summary.ci_low:+.3f}, {summary.ci_high:+.3f}]): {verdict}")


def ntg_seeds_markdown(summary: NTGSummary) -> str:
    """:func:`ntg_seeds_text` coloured: red for negative transfer, green for positive, grey within
    noise and for a single seed."""
    return f"**:{NTG_LABEL_COLOURS.get(summary.label, 'gray')}[{ntg_seeds_text(summary)}]**"


def _settings_text(config: dict) -> str:
    """A configuration's schedule and non-default hyperparameters, e.g. ``30 epochs · lr 0.003 ·
    batch 64 · weight=0.5``."""
    parts = [f"{config.get('epochs')} epochs", f"lr {config.get('lr', float('nan')):g}",
             f"batch {config.get('batch_size')}"]
    strategy = config.get("strategy")
    if strategy in STRATEGIES:
        defaults = {f.name: f.default for f in form_fields(STRATEGIES[strategy].Config)}
        parts += [f"{k}={v}" for k, v in sorted((config.get("params") or {}).items()) if defaults.get(k, v) != v]
    return " · ".join(parts)


def ntg_seeds_frame(groups) -> pd.DataFrame:
    """``tlcore.seeds.ntg_by_configuration`` as a table: one row per configuration with its mean
    NTG, standard deviation, interval, number of seeds and label."""
    rows = []
    for g in groups:
        r, s = g.record, g.summary
        rows.append({"strategy": r.strategy, "source": r.source, "target": r.target,
                     "labels/class": r.target_labels, "settings": _settings_text(r.config),
                     "seeds": ", ".join(str(x) for x in g.seeds), "n": s.n, "NTG mean": s.mean, "NTG sd": s.std,
                     "CI low": s.ci_low, "CI high": s.ci_high,
                     "verdict": "1 seed: run more seeds" if s.n < 2 else s.label})
    return pd.DataFrame(rows, columns=["strategy", "source", "target", "labels/class", "settings", "seeds", "n",
                                       "NTG mean", "NTG sd", "CI low", "CI high", "verdict"])


NTG_SEEDS_COLUMNS = {
    "NTG mean": st.column_config.NumberColumn(format="%+.3f", help="mean negative-transfer gap over the seeds "
                                              "(positive = the source hurt)"),
    "NTG sd": st.column_config.NumberColumn(format="%.3f", help="sample standard deviation over the seeds"),
    "CI low": st.column_config.NumberColumn(format="%+.3f", help="95% Student-t interval of the mean"),
    "CI high": st.column_config.NumberColumn(format="%+.3f", help="95% Student-t interval of the mean"),
}


def style_ntg_verdicts(frame: pd.DataFrame):
    """The table with its verdicts coloured (red: negative transfer, green: positive, grey: noise)."""
    colours = {NEGATIVE_TRANSFER: BAD, POSITIVE_TRANSFER: GOOD}
    return frame.style.map(lambda v: f"color: {colours.get(v, '#7f7f7f')}; font-weight: bold", subset=["verdict"])


# --- export: figures as PNG or SVG, tables as CSV --------------------------------------------------------
def figure_config(name: str) -> dict:
    """Plotly config of a chart: the toolbar shown, and its camera button downloading
    ``transfer-lab-<name>.png`` or ``.svg`` (the sidebar's "Figure export" setting), at twice the
    on-screen resolution for PNG."""
    fmt = str(st.session_state.get(K.FIGURE_FORMAT) or K.FIGURE_FORMATS[0]).lower()
    for prefix in ("chart.", "btn."):
        name = name[len(prefix):] if name.startswith(prefix) else name
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "figure"
    return {"displayModeBar": True, "displaylogo": False,
            "toImageButtonOptions": {"format": fmt, "filename": f"transfer-lab-{stem}", "scale": 2}}


def show_figure(fig, key: str, **kwargs):
    """``st.plotly_chart(fig, key=key, config=figure_config(key), **kwargs)``: every chart of the app
    goes through here, so that each exports as the sidebar says. Returns what ``st.plotly_chart``
    returns (the selection state with ``on_select="rerun"``); a ``config`` in ``kwargs`` is merged in."""
    config = {**figure_config(key), **(kwargs.pop("config", None) or {})}
    return st.plotly_chart(fig, key=key, config=config, **kwargs)


def csv_download(frame: pd.DataFrame, label: str, file_name: str, key: str) -> None:
    """A button that downloads ``frame`` as a UTF-8 CSV file."""
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=file_name, mime="text/csv",
                       key=key, icon=":material/download:")


def curves_frame(events: Sequence[dict]) -> pd.DataFrame:
    """A run's curves as a table, one row per logged step or evaluation: ``kind`` ("step" or
    "eval"), ``step``, ``phase``, each loss term (steps), the accuracies and extras (evaluations)."""
    rows = []
    for e in events:
        if e["kind"] == "step":
            rows.append({"kind": "step", "step": e["step"], "phase": e.get("phase"),
                         **{f"loss {k}": v for k, v in e["losses"].items()}})
        elif e["kind"] == "eval":
            rows.append({"kind": "eval", "step": e["step"], "source_accuracy": e["source_accuracy"],
                         "target_accuracy": e["target_accuracy"], **e.get("extras", {})})
    return pd.DataFrame(rows)


def per_class_frame(models: Sequence[tuple[str, str, RunInspection]], class_names: Sequence[str]) -> pd.DataFrame:
    """Per-class target test accuracy of each ``(strategy, run id, inspection)``: one row per class
    and model."""
    return pd.DataFrame([{"strategy": name, "run": run_id, "class": str(c), "accuracy": float(acc)}
                         for name, run_id, ins in models for c, acc in zip(class_names, ins.per_class_accuracy)],
                        columns=["strategy", "run", "class", "accuracy"])


def confusion_frame(models: Sequence[tuple[str, str, RunInspection]], class_names: Sequence[str]) -> pd.DataFrame:
    """The target test confusion matrix of each ``(strategy, run id, inspection)`` in long form:
    one row per model, true class and predicted class, with the count."""
    names = [str(c) for c in class_names]
    return pd.DataFrame([{"strategy": name, "run": run_id, "true": names[t], "predicted": names[p],
                          "count": int(ins.confusion[t][p])}
                         for name, run_id, ins in models for t in range(len(names)) for p in range(len(names))],
                        columns=["strategy", "run", "true", "predicted", "count"])
