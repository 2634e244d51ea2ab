"""Every session-state key of the app, in one place.

Prefixes say what a key holds, and :func:`pages._ui.init_state` relies on them:

* ``w.``   the value of a widget that keeps its value across pages (seeded with
  :data:`DEFAULTS`, re-asserted on every run so that Streamlit does not drop it
  while its page is not shown);
* ``btn.`` a button or another widget whose value cannot be set from code;
* ``s.``   plain per-session state written by the app itself (no widget);
* ``chart.`` / ``table.`` a chart or table (keyed so that it keeps its identity, and so
  that the browser test can find it by its ``st-key-…`` class).

Widgets that depend on a name (a strategy's hyperparameter, a shift of the
source or the target) get their key from the functions below.
"""
from __future__ import annotations

from tlcore.config import RunConfig

WIDGET, BUTTON, STATE = "w.", "btn.", "s."

# --- sidebar (every page) ----------------------------------------------------------------
SEED = "w.seed"

# --- Data page -----------------------------------------------------------------------------
ROLES = ("source", "target")
BUDGET = "w.data.budget"           # also drawn on the Train page


def dataset(role: str) -> str:
    """The dataset select box of ``role`` ("source" or "target")."""
    return f"w.data.{role}.dataset"


def shift(role: str, name: str) -> str:
    """The control of shift ``name`` (e.g. "rotate") of ``role``."""
    return f"w.data.{role}.shift.{name}"


# --- Train page ------------------------------------------------------------------------------
STRATEGY = "w.train.strategy"
EPOCHS = "w.train.epochs"
BATCH_SIZE = "w.train.batch_size"
LR = "w.train.lr"
START = "btn.train.start"
STOP = "btn.train.stop"
RUN_ID = "s.train.run_id"           # the run the Train page shows (also ?run= in the URL)
EVENTS = "s.train.events"           # events of that run read so far (dicts from the run store)
LAST_SEQ = "s.train.last_seq"       # seq of the last event read
POLL_MS = "s.train.poll_ms"         # durations of the last live refreshes, in milliseconds
STARTED_AT = "s.train.started_at"   # perf_counter() when Start was clicked
FIRST_POINT_S = "s.train.first_point_s"  # seconds from that click to the first live point shown
TRAIN_ERROR = "s.train.error"       # a start error to show once


def param(strategy: str, name: str) -> str:
    """The widget of hyperparameter ``name`` of ``strategy`` (from its Config dataclass)."""
    return f"w.train.param.{strategy}.{name}"


# --- Lab page ----------------------------------------------------------------------------------
RECENT = "btn.lab.recent"           # selection in the recent-runs table
OPEN_TRAIN = "btn.lab.open_train"
OPEN_INSPECT = "btn.lab.open_inspect"
GOTO_TRAIN = "s.lab.goto_train"     # a preset has started: show it on the Train page


def preset(name: str) -> str:
    return f"btn.lab.preset.{name}"


# --- Inspect page ------------------------------------------------------------------------------
INSPECT_RUN = "w.inspect.run"
BY_CLASS = "w.inspect.by_class"
PROJECTION = "w.inspect.projection"  # "UMAP" or "PCA"
BASELINE_START = "btn.inspect.baseline"


def selection(run_id: str) -> str:
    """The point selection of a run's embedding chart."""
    return f"btn.inspect.selection.{run_id}"


# --- Compare page ------------------------------------------------------------------------------
STATUS_FILTER = "w.compare.status"
STRATEGY_FILTER = "w.compare.strategies"
PAIR_FILTER = "w.compare.pair"
DELETE_ID = "w.compare.delete_id"
DELETE_CONFIRM = "w.compare.delete_confirm"
DELETE = "btn.compare.delete"
EXPORT = "btn.compare.export"
COMPARE_TABLE = "table.compare.runs"
FLASH = "s.flash"                   # (kind, message) to show on the next run, e.g. ("success", "run deleted")


def chart(page: str, name: str) -> str:
    """A chart's key, e.g. ``chart("train", "losses")``."""
    return f"chart.{page}.{name}"

ALL_PAIRS = "all pairs"
PROJECTIONS = ("UMAP", "PCA")

_RUN = RunConfig()
DEFAULTS: dict[str, object] = {
    SEED: _RUN.seed,
    BUDGET: _RUN.target_labels,
    dataset("source"): _RUN.source.split(":")[0],
    dataset("target"): _RUN.target.split(":")[0],
    STRATEGY: _RUN.strategy,
    EPOCHS: _RUN.epochs,
    BATCH_SIZE: _RUN.batch_size,
    LR: _RUN.lr,
    BY_CLASS: False,
    PROJECTION: PROJECTIONS[0],
    STATUS_FILTER: ["done", "stopped"],
    PAIR_FILTER: ALL_PAIRS,
    DELETE_CONFIRM: False,
}
