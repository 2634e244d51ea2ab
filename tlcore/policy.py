"""What the app lets each user of a shared server do: data roots, upload caps, bounds on runs.

The app, opened by a whole class from one server, builds one :class:`AppPolicy`
from the environment (:meth:`AppPolicy.from_env`) and passes it (or its
``roots``) to the engine; the command line builds none, so its user, who owns
the machine, keeps full access. Settings (environment variables of the server):

=================================  =========================================  ===============
variable                           what it bounds                             default
=================================  =========================================  ===============
``TRANSFER_LAB_DATA_ROOTS``        folders the app may read, besides the      (none)
                                   data directory (``os.pathsep``-separated)
``TRANSFER_LAB_MAX_UPLOAD_MB``     size of one uploaded zip                   1024 (as
                                                                              ``.streamlit/config.toml``)
``TRANSFER_LAB_MAX_UPLOAD_FILES``  entries in one uploaded zip                50000
``TRANSFER_LAB_MAX_EPOCHS``        epochs of a run started from the app       100
``TRANSFER_LAB_MAX_EXAMPLES``      examples (train and test) per domain       100000
=================================  =========================================  ===============

A request past a limit raises :class:`~tlcore.errors.LimitError` (a size, a
count) or :class:`~tlcore.errors.ConfinementError` (a path), each naming the
limit and the variable that sets it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from .config import RunConfig
from .data.archive import MIB, ArchiveLimits
from .data.roots import ROOTS_ENV, DataRoots
from .errors import ConfigError, LimitError

MAX_UPLOAD_MB_ENV = "TRANSFER_LAB_MAX_UPLOAD_MB"
MAX_UPLOAD_FILES_ENV = "TRANSFER_LAB_MAX_UPLOAD_FILES"
MAX_EPOCHS_ENV = "TRANSFER_LAB_MAX_EPOCHS"
MAX_EXAMPLES_ENV = "TRANSFER_LAB_MAX_EXAMPLES"

DEFAULT_MAX_UPLOAD_MB = 1024  # the same as server.maxUploadSize in .streamlit/config.toml (a test checks it)
DEFAULT_MAX_UPLOAD_FILES = 50_000
DEFAULT_MAX_EPOCHS = 100
DEFAULT_MAX_EXAMPLES = 100_000


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={value} must be at least 1")
    return value


@dataclass(frozen=True)
class AppPolicy:
    """The limits the app applies to what a user reads, uploads and runs (see the module docstring)."""

    roots: DataRoots
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES
    max_epochs: int = DEFAULT_MAX_EPOCHS
    max_examples: int = DEFAULT_MAX_EXAMPLES

    @classmethod
    def from_env(cls) -> "AppPolicy":
        """The policy the server's environment sets (defaults for variables that are unset or empty)."""
        return cls(roots=DataRoots.from_env(),
                   max_upload_mb=_positive_int(MAX_UPLOAD_MB_ENV, DEFAULT_MAX_UPLOAD_MB),
                   max_upload_files=_positive_int(MAX_UPLOAD_FILES_ENV, DEFAULT_MAX_UPLOAD_FILES),
                   max_epochs=_positive_int(MAX_EPOCHS_ENV, DEFAULT_MAX_EPOCHS),
                   max_examples=_positive_int(MAX_EXAMPLES_ENV, DEFAULT_MAX_EXAMPLES))

    # --- uploads ------------------------------------------------------------------------------------
    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MIB

    def archive_limits(self, base: ArchiveLimits = ArchiveLimits()) -> ArchiveLimits:
        """``base`` with this policy's caps on the zip's size and its number of entries."""
        from dataclasses import replace

        return replace(base, max_archive_bytes=self.max_upload_bytes,
                       max_files=min(base.max_files, self.max_upload_files))

    def check_upload(self, size: int, name: str = "the zip") -> None:
        """:class:`LimitError` for an upload of ``size`` bytes above the cap (call it before writing anything)."""
        if size > self.max_upload_bytes:
            raise LimitError(f"{name} is {size / MIB:.1f} MiB, above this server's upload limit of "
                             f"{self.max_upload_mb} MiB ({MAX_UPLOAD_MB_ENV}); nothing was written. Unpack large "
                             "datasets on the server below a data folder and use the folder tab instead")

    # --- runs -----------------------------------------------------------------------------------------
    def check_specs(self, specs: Iterable[str], data_dir: str | None = None) -> None:
        """Refuse specs that would read outside the roots (:func:`tlcore.data.check_spec_access`)."""
        from .data import check_spec_access

        for spec in dict.fromkeys(specs):
            check_spec_access(spec, data_dir or None, self.roots)

    def check_epochs(self, epochs: int) -> None:
        if epochs > self.max_epochs:
            raise LimitError(f"epochs={epochs} is above this server's limit of {self.max_epochs} epochs for runs "
                             f"started from the app ({MAX_EPOCHS_ENV}); choose {self.max_epochs} or fewer")

    def check_size(self, spec: str, data_dir: str | None = None) -> None:
        """:class:`LimitError` when domain ``spec`` holds more examples than the limit."""
        from .data import domain_size, parse_spec
        from .data.torchvision_data import SOURCES, dataset_status

        name = parse_spec(spec).dataset
        if name in SOURCES and any(s.state == "missing" for s in dataset_status(name, data_dir or None)):
            return  # counting would download it here; its size is fixed and the run downloads it anyway
        size = domain_size(spec, data_dir or None, self.roots)
        if size > self.max_examples:
            raise LimitError(f"{spec} holds {size} examples (train and test), above this server's limit of "
                             f"{self.max_examples} per domain for runs started from the app ({MAX_EXAMPLES_ENV}); "
                             "add the shift limit=N to it (at most N examples per class of each split; put it "
                             "first in a folder's spec so that it applies before the images are decoded)")

    def check_config(self, config: RunConfig) -> None:
        """Everything a run started from the app must satisfy: its data below the roots, at most
        ``max_epochs`` epochs, at most ``max_examples`` examples per domain. Raises
        :class:`~tlcore.errors.ConfinementError` or :class:`~tlcore.errors.LimitError`."""
        self.check_epochs(config.epochs)
        self.check_specs((config.source, config.target), config.data_dir)
        for spec in dict.fromkeys((config.source, config.target)):
            self.check_size(spec, config.data_dir)

    def check_configs(self, configs: Iterable[RunConfig]) -> None:
        """:meth:`check_config` for each distinct configuration (a sweep's plan)."""
        checked: set[tuple] = set()
        for config in configs:
            key = (config.epochs, config.source, config.target, config.data_dir)
            if key not in checked:
                checked.add(key)
                self.check_config(config)

    def describe(self) -> list[str]:
        """The limits in words, one line each (the app shows them)."""
        return [f"data is read only below: {self.roots.describe()} ({ROOTS_ENV} adds folders)",
                f"an uploaded zip: at most {self.max_upload_mb} MiB and {self.max_upload_files} files "
                f"({MAX_UPLOAD_MB_ENV}, {MAX_UPLOAD_FILES_ENV})",
                f"a run: at most {self.max_epochs} epochs ({MAX_EPOCHS_ENV}) and {self.max_examples} examples "
                f"per domain ({MAX_EXAMPLES_ENV})"]
