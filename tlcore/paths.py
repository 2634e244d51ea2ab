"""Where Transfer Lab keeps its files: the run store, checkpoints and datasets.

Everything lives under one *home* directory:

* ``$TRANSFER_LAB_HOME`` when that variable is set (tests and portable installs);
* otherwise the per-user data directory of the platform:
  ``$XDG_DATA_HOME/transfer-lab`` or ``~/.local/share/transfer-lab`` (Linux and
  other Unixes), ``~/Library/Application Support/transfer-lab`` (macOS),
  ``%LOCALAPPDATA%\\transfer-lab`` (Windows).

The functions only compute paths; nothing is created on import or on call. Code
that writes a file creates its parent directory at that moment
(``path.parent.mkdir(parents=True, exist_ok=True)``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "transfer-lab"

HOME_ENV = "TRANSFER_LAB_HOME"
DATA_ENV = "TRANSFER_LAB_DATA"


def _env_path(name: str) -> Path | None:
    """The path in environment variable ``name``; None when unset or empty."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _user_data_dir() -> Path:
    """The platform's per-user data directory (without the application name)."""
    if sys.platform.startswith("win"):
        local = _env_path("LOCALAPPDATA")
        return local if local is not None else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = _env_path("XDG_DATA_HOME")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    if xdg is not None and xdg.is_absolute():
        return xdg
    return Path.home() / ".local" / "share"


def home_dir() -> Path:
    """The Transfer Lab home: ``$TRANSFER_LAB_HOME`` or the per-user data directory."""
    explicit = _env_path(HOME_ENV)
    return explicit if explicit is not None else _user_data_dir() / APP_NAME


def default_store_path() -> Path:
    """The SQLite run store: ``<home>/runs.sqlite``."""
    return home_dir() / "runs.sqlite"


def checkpoint_dir() -> Path:
    """Where model checkpoints are written: ``<home>/checkpoints``."""
    return home_dir() / "checkpoints"


def numba_cache_dir() -> Path:
    """Where numba keeps UMAP's compiled kernels between processes: ``<home>/numba-cache``
    (see ``tlcore.embed``; by default numba writes next to the installed sources, often read-only)."""
    return home_dir() / "numba-cache"


def default_data_dir() -> Path:
    """Dataset cache: ``$TRANSFER_LAB_DATA`` or ``<home>/data``."""
    explicit = _env_path(DATA_ENV)
    return explicit if explicit is not None else home_dir() / "data"
