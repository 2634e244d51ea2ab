"""Every session-state key of the app, in one place.

Prefixes say what a key holds, and :func:`pages._state.init_state` relies on them:

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
MODEL = "w.train.model"             # "auto" or a tlcore.models.MODELS name (backbones for images)
OPTIMIZER = "w.train.optimizer"     # the optimisation recipe: RunConfig.optimizer, lr_schedule, momentum
LR_SCHEDULE = "w.train.lr_schedule"
MOMENTUM = "w.train.momentum"
START = "btn.train.start"
STOP = "btn.train.stop"
RUN_ID = "s.train.run_id"           # the run the Train page shows (also ?run= in the URL)
EVENTS = "s.train.events"           # events of that run read so far (dicts from the run store)
LAST_SEQ = "s.train.last_seq"       # seq of the last event read
PRESENT = "w.present"               # presentation mode (pages/_present.py)
POLL_MS = "s.train.poll_ms"         # durations of the last live refreshes, in milliseconds
LIVE_INTERVAL = "s.train.live_interval"  # seconds between live refreshes now (pages/_live.refresh_interval)
LIVE_FIGURES = "s.train.live_figures"    # the live figures last drawn (pages/_live.FigureMemo)
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
INSPECT_FALLBACK = "s.inspect.fallback"   # the run shown because a link's run was not found (no auto baseline)
INSPECT_TRAIN_BASE = "btn.inspect.train_baseline"
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
WITH_STOPPED = "w.compare.with_stopped"   # stopped runs count in the strategy means
DELETE_ID = "w.compare.delete_id"
DELETE_CONFIRM = "w.compare.delete_confirm"
DELETE = "btn.compare.delete"
EXPORT = "btn.compare.export"
COMPARE_TABLE = "table.compare.runs"
FLASH = "s.flash"                   # (kind, message) to show on the next run, e.g. ("success", "run deleted")

# --- the app shell --------------------------------------------------------------------------------
STORE_QUARANTINE = "btn.app.store_quarantine"  # move a damaged run store aside (see pages/_shell.py)
OWNER = "s.app.owner"               # this browser session's anonymous owner id (also ?owner= in the URL)
TEACHER = "s.app.teacher"           # True once the teacher token was entered in the sidebar
TEACHER_TOKEN = "btn.app.teacher_token"  # the sidebar's token field (cleared once read)
TEACHER_ERROR = "s.app.teacher_error"    # why the token was refused, shown once
QUEUE_STOP = "btn.queue.stop"       # the Queue page's Stop buttons: f"{QUEUE_STOP}.{job_id}"


# --- Negative-transfer page --------------------------------------------------------------------
EXPERIMENTS = ("budget", "shift", "source")
NT_EXPERIMENT = "w.nt.experiment"   # which of the three experiments the page shows


def nt(experiment: str, name: str) -> str:
    """A setting of one negative-transfer experiment, e.g. ``nt("budget", "source")``."""
    return f"w.nt.{experiment}.{name}"


def nt_state(experiment: str, name: str) -> str:
    """Per-session state of one experiment: ``job`` (the sweep job id), ``spec`` (its spec as a
    dict), ``loaded`` (a result loaded from a file), ``error``."""
    return f"s.nt.{experiment}.{name}"


def nt_button(experiment: str, name: str) -> str:
    return f"btn.nt.{experiment}.{name}"


# --- Lessons page ------------------------------------------------------------------------------
LESSON = "w.lesson.name"


def lesson_state(name: str) -> str:
    """Per-session state of the Lessons page: ``job``, ``loaded``, ``error``."""
    return f"s.lesson.{name}"


def lesson_button(name: str) -> str:
    return f"btn.lesson.{name}"


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
    MODEL: _RUN.model,
    OPTIMIZER: _RUN.optimizer,
    LR_SCHEDULE: _RUN.lr_schedule,
    MOMENTUM: _RUN.momentum,
    BY_CLASS: False,
    PROJECTION: PROJECTIONS[0],
    STATUS_FILTER: ["done", "stopped"],
    PAIR_FILTER: ALL_PAIRS,
    DELETE_CONFIRM: False,
    WITH_STOPPED: False,
    # Negative-transfer page: each default shows its phenomenon on the built-in data (measured over
    # 3 seeds: budget, finetune is ahead at k = 1 and below target_only beyond the noise from k = 10;
    # shift, source_only turns negative at 30 degrees, DANN at 60; source (1 seed), the permuted
    # source has the best LogME before training and the worst NTG after).
    NT_EXPERIMENT: EXPERIMENTS[0],
    nt("budget", "source"): "moons",
    nt("budget", "target"): "moons:rotate=60",
    nt("budget", "adaptation"): "dann",
    nt("budget", "budgets"): "1, 2, 5, 10, 50, all",
    nt("budget", "seeds"): 3,
    nt("budget", "epochs"): 20,
    nt("shift", "source"): "moons",
    nt("shift", "target"): "moons",
    nt("shift", "shift"): "rotate",
    nt("shift", "values"): "",
    nt("shift", "adaptation"): "dann",
    nt("shift", "labels"): 2,
    nt("shift", "seeds"): 3,
    nt("shift", "epochs"): 20,
    nt("source", "target"): "digits",
    nt("source", "sources"): "digits:rotate=15\ndigits:rotate=45\ndigits:invert\ndigits:permute",
    nt("source", "strategy"): "finetune",
    nt("source", "labels"): 2,
    nt("source", "seeds"): 1,
    nt("source", "epochs"): 10,
}


# --- shareable links, figure export (pages/_url.py; the sidebar) -------------------------------------
FIGURE_FORMAT = "w.figure_format"   # "PNG" or "SVG": what a chart's camera button downloads
FIGURE_FORMATS = ("PNG", "SVG")
URL_WRITTEN = "s.url.written"       # the query params (name -> text) this session last wrote
URL_PENDING = "s.url.pending"       # values from a link for widgets already drawn this run, and warnings
URL_PROBLEMS = "s.url.problems"     # (the params written, the warnings about the link they came from)
NTG_TABLE = "table.compare.ntg"     # Compare: the NTG over seeds of each configuration
DEFAULTS[FIGURE_FORMAT] = FIGURE_FORMATS[0]


def download(page: str, name: str) -> str:
    """A CSV download button's key, e.g. ``download("inspect", "per_class")``."""
    return f"btn.download.{page}.{name}"


# --- Data sources (Data page) --------------------------------------------------------------
# The data directory, torchvision downloads and your own image folders (pages/_sources.py).
DATA_DIR = "w.data.data_dir"                    # text; "" = the default (tlcore.paths.default_data_dir)
DOWNLOAD_DATASET = "w.data.download.dataset"    # the torchvision dataset whose files are listed (radio)
DOWNLOAD_START = "btn.data.download.start"
DOWNLOAD_STOP = "btn.data.download.stop"
DOWNLOAD_REPAIR = "btn.data.download.repair"      # delete the corrupt files and download again
DOWNLOAD_NOTICE = "s.data.download.notice"      # why the corrupt files could not be deleted (shown once)
DOWNLOAD_JOB = "s.data.download.job"            # {"id", "dataset", "data_dir"} of this session's last download
DOWNLOAD_FOLLOWS = "s.data.download.follows"    # the source/target datasets the download panel last followed
FOLDER_PATH = "w.data.folder.path"              # a folder on the server: a path, or a name under folders_dir()
FOLDER_PICK = "btn.data.folder.pick"            # shortcut radio over folders_dir()'s sub-folders (not kept)
FOLDER_ADD = "btn.data.folder.add"
FOLDER_CHOICES = "s.data.folder.choices"        # "folder:ARG" datasets added to the select boxes
FOLDER_NOTICE = "s.data.folder.notice"          # what the last Add did, shown once
UPLOAD = "btn.data.upload"                      # the zip file uploader
UPLOAD_RESULT = "s.data.upload.result"          # pages._sources.ZipImport of the last upload


def folder_use(role: str, spec: str) -> str:
    """The "Use as source/target" button of one previewed folder domain (``spec`` = ``folder:…``)."""
    return f"btn.data.folder.use.{role}.{spec}"


DEFAULTS.update({DATA_DIR: "", FOLDER_PATH: ""})
