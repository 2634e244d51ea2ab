"""Runs: the app's run store, starting and stopping runs in the background worker, reading a
run's events, and the cached engine calls (pairs, gaps, inspections, projections).

Nothing here trains a model or computes a metric itself; the engine (``tlcore``) does. Data
and metrics are cached with ``st.cache_data`` (keyed by the run store path and run id where a
run is involved); a model is never cached: the Inspect page rebuilds a stored run from its
checkpoint.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Sequence

import numpy as np
import pandas as pd  # imported here, in the script thread, before any warm-up thread can import it half-way
import streamlit as st

from tlcore.api import baseline_config, load_trained
from tlcore.config import RunConfig
from tlcore.data import DataRoots, DomainPair, make_pair, parse_spec
from tlcore.embed import project_pca
from tlcore.errors import TransferLabError
from tlcore.inspection import (Cloud, CouplingView, DistanceMatrices, GapReport, RunInspection, coupling_view, grid_bounds,
                               input_cloud, input_gap, inspect_trainer, rkd_distance_matrices)
from tlcore.models import MODELS, RANDOM_INIT_SUFFIX, models_for
from tlcore.owners import Actor
from tlcore.paths import default_store_path
from tlcore.presets import PRESETS
from tlcore.runs import RunRecord, RunStore
from tlcore.strategies import STRATEGIES
from tlcore.worker import get_worker

from pages import _keys as K
from pages import _policy
from pages._state import apply_config, config_from_state, data_dir_key, flash
from pages._umap_worker import service as umap_service

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


def forget_store(path: str) -> None:
    """Drop the reused :class:`RunStore` of ``path`` (its file was replaced): the next
    :func:`store` opens the file again, creating a fresh store where there is none."""
    _stores.pop(path, None)


def attach(run_id: str | None) -> None:
    """Make ``run_id`` the run the Train page shows (events are read again from the store)."""
    state = st.session_state
    state[K.RUN_ID] = run_id
    state[K.EVENTS] = []
    state[K.LAST_SEQ] = -1
    state[K.POLL_MS] = []
    state[K.FIRST_POINT_S] = None
    state[K.LIVE_INTERVAL] = None  # the live refresh starts fast, then follows this run's pace
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]


def owner() -> str | None:
    """This browser session's anonymous owner id (see ``pages._shell.ensure_owner``)."""
    return st.session_state.get(K.OWNER)


def actor() -> Actor:
    """Who this session is, for the engine's ownership checks: its owner id, and whether the
    teacher token was entered."""
    return Actor(owner(), teacher=bool(st.session_state.get(K.TEACHER)))


def start_run(config: RunConfig, tags: dict | None = None) -> str:
    """Queue ``config`` in the background worker (it starts at once when a slot is free) and
    attach the Train page to it. A run past the server's limits (``pages._policy.admit``) raises
    TransferLabError and nothing starts."""
    _policy.admit(config)
    run_id = get_worker().start_run(config, store(), tags=tags, owner=owner())
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


def recipe_line(metrics: dict) -> str | None:
    """The run's optimisation recipe as its record states it (the ``recipe:`` line of
    ``tlcore.api.preprocessing_record``), or None for a run recorded before recipes were."""
    lines = metrics.get("preprocessing") or []
    return next((line for line in lines if isinstance(line, str) and line.startswith("recipe:")), None)


def model_choices(kind: str) -> list[str]:
    """``auto`` and the models that take ``kind`` ("vector" or "image") inputs."""
    return ["auto", *models_for(kind)]


def model_note(name: str, kind: str) -> str:
    """What a model choice means for the run: its description and, for an ImageNet-pretrained
    backbone, whether its weights are in the torch cache or will be downloaded at Start."""
    if name == "auto":
        return f"auto: {'an MLP' if kind == 'vector' else 'the LeNet-style CNN'} for this pair"
    info = MODELS[name]
    note = f"{name}: {info.description}"
    if info.pretrained:
        from tlcore.backbones import weights_file
        path, url, _ = weights_file(info.architecture)
        note += (f". Weights in the torch cache ({path.name})." if path.is_file() else
                 f". Weights not cached yet: Start downloads them ({url}); offline, the run stops with a clear "
                 f"error, and {name}{RANDOM_INIT_SUFFIX} trains without them.")
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


def labels_needed(strategy: str, target_labels: int) -> str | None:
    """The Train page's words when ``strategy`` trains on labelled target examples and none are
    set (the engine's own error names the CLI's flag), else None."""
    if STRATEGIES[strategy].needs_target_labels and target_labels < 1:
        return (f"{strategy} trains on labelled target examples: set **Target labels per class** "
                "(above) to 1 or more.")
    return None


def start_from_state() -> None:
    """Start button callback: start the configured run, or keep the error to show. A dataset
    whose files are missing is not downloaded here (in the page's thread, with no progress):
    the Data page downloads it with a progress bar and a Stop button."""
    st.session_state[K.TRAIN_ERROR] = None
    try:
        config = config_from_state()
        needed = labels_needed(config.strategy, config.target_labels)
        if needed:
            st.session_state[K.TRAIN_ERROR] = needed
            return
        missing = missing_downloads(config)
        if missing:
            st.session_state[K.TRAIN_ERROR] = missing_downloads_message(missing, config.data_dir,
                                                                        "press Start again")
            return
        start_run(config)
    except TransferLabError as exc:
        st.session_state[K.TRAIN_ERROR] = str(exc)


def stop_attached() -> None:
    """Stop button callback: stop the attached run (a queued one leaves the queue); the worker
    records it as stopped. Only its owner or a teacher may (the worker checks)."""
    run_id = st.session_state.get(K.RUN_ID)
    if not run_id:
        return
    worker = get_worker()
    if worker.job(run_id) is None:
        st.session_state[K.TRAIN_ERROR] = (f"run {run_id} is not running in this app's process "
                                           "(it was started elsewhere), so it cannot be stopped from here")
        return
    try:
        worker.stop(run_id, wait=1.5, actor=actor())
    except TransferLabError as exc:
        st.session_state[K.TRAIN_ERROR] = str(exc)


def queue_note(run_id: str) -> str | None:
    """"queued, position N, about M s" while ``run_id`` waits in the queue ("starting…" while its
    worker process loads), else None."""
    entry = get_worker().queue_entry(run_id)
    if entry is None:
        return None
    if entry.state != "queued":
        return "starting: its worker process is loading…"
    wait = "" if entry.wait_s is None else f", about {entry.wait_s:.0f} s"
    return f"queued, position {entry.position}{wait}"


def apply_preset(name: str) -> str:
    """Fill the pages with preset ``name`` and start it, plus the strategies it compares with."""
    preset = PRESETS[name]
    apply_config(preset.config)
    run_id = start_run(preset.config, tags={"preset": name})
    baseline = baseline_config(preset.config)  # run_experiment trains it itself
    automatic = baseline.strategy if baseline is not None else None
    for strategy in preset.compare_with:
        if strategy != automatic and strategy != preset.config.strategy:
            _policy.admit(preset.config.replace(strategy=strategy, params={}))
            get_worker().start_run(preset.config.replace(strategy=strategy, params={}), store(),
                                   tags={"preset": name, "compare_with": run_id}, owner=owner())
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
def load_pair(source: str, target: str, seed: int, budget: int, data_dir: str | None = None,
              heterogeneous: bool = False) -> DomainPair:
    """``tlcore.data.make_pair``, cached; raises TransferLabError for a pair that cannot be made.

    ``data_dir`` None means the Data page's setting (:func:`data_dir_setting`); "" the default.
    ``heterogeneous`` accepts domains in different input spaces (the Data page shows them and
    says which strategies can train on them). Only data below the server's data roots is read
    (``pages._policy``)."""
    return _load_pair(source, target, seed, budget, data_dir_key(data_dir), _roots(), heterogeneous)


def _roots() -> tuple[str, ...]:
    return tuple(str(path) for path in _policy.policy().roots.paths)


@st.cache_data(show_spinner=False, max_entries=16)
def _load_pair(source: str, target: str, seed: int, budget: int, data_dir: str,
               roots: tuple[str, ...], heterogeneous: bool = False) -> DomainPair:
    # "auto", as a run: a folder too large to hold resident is streamed (images decoded on access)
    return make_pair(source, target, seed=seed, target_labels=budget, data_dir=data_dir or None, data_mode="auto",
                     heterogeneous=heterogeneous, roots=DataRoots.of(*roots))


def gap_sample(gap: GapReport) -> str:
    """The sample a gap was measured on, in words: "a seeded sample of 500 of 1,000 source and
    500 of 1,000 target training points" (or "all 300 + 300 training points")."""
    if not gap.subsampled:
        return f"all {gap.n_source:,} source and {gap.n_target:,} target training points"
    return (f"a seeded sample of {gap.n_source:,} of {gap.of_source:,} source and {gap.n_target:,} of "
            f"{gap.of_target:,} target training points")


def pair_gap(source: str, target: str, seed: int, data_dir: str | None = None) -> tuple[GapReport, Cloud]:
    """The gap between raw source and target inputs, and a 2-D view of them (PCA for images)."""
    return _pair_gap(source, target, seed, data_dir_key(data_dir), _roots())


@st.cache_data(show_spinner=False, max_entries=16)
def _pair_gap(source: str, target: str, seed: int, data_dir: str, roots: tuple[str, ...]) -> tuple[GapReport, Cloud]:
    pair = _load_pair(source, target, seed, 0, data_dir, roots)
    return input_gap(pair, seed=seed), input_cloud(pair, max_points=500, seed=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def run_relations(store_path: str, run_id: str, updated_at: float
                  ) -> tuple[CouplingView | None, DistanceMatrices | None, bool]:
    """A stored run's relation views (a gromov coupling, rkd's teacher and student distance matrices;
    None where the run has none) and whether its pair is heterogeneous."""
    trainer, artifacts = load_trained(run_id, RunStore(store_path))
    return (coupling_view(trainer.pair, artifacts),
            rkd_distance_matrices(trainer, artifacts, seed=trainer.config.seed), trainer.pair.heterogeneous)


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
