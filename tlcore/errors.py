"""Errors that the engine raises for bad input.

Every error a user can cause is a subclass of :class:`TransferLabError`, whose
message says what was wrong and what is valid. The CLI turns them into a
one-line message and a non-zero exit; the app shows them as a notice. None of
them leaves the run store in a half-written state.
"""
from __future__ import annotations

import re
from typing import Iterable


class TransferLabError(Exception):
    """Base class for every user-facing error of the engine."""


def _listing(options: Iterable[str]) -> str:
    return ", ".join(sorted(options))


def plural(noun: str) -> str:
    """The English plural of a (last) noun: "strategy" -> "strategies", "class" -> "classes",
    "torchvision dataset" -> "torchvision datasets", "key" -> "keys"."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"


def with_article(noun: str) -> str:
    """``noun`` with "a" or "an" by its first letter's sound: "an image", "a vector"."""
    return ("an " if noun[:1].lower() in "aeio" else "a ") + noun


class UnknownNameError(TransferLabError, KeyError):
    """A dataset, shift, strategy, model or lesson name that does not exist."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {plural(kind)}: {_listing(self.valid)}")

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.args[0]


class SpecError(TransferLabError, ValueError):
    """A malformed dataset spec or a value outside its range."""


class ConfigError(TransferLabError, ValueError):
    """An invalid run or strategy configuration value."""


class ClassMismatchError(TransferLabError, ValueError):
    """Source and target do not share one class set."""

    def __init__(self, source_classes: Iterable[str], target_classes: Iterable[str]):
        s, t = list(source_classes), list(target_classes)
        only_s = [c for c in s if c not in t]
        only_t = [c for c in t if c not in s]
        super().__init__(
            "source and target must share their class set.\n"
            f"  source classes ({len(s)}): {', '.join(s)}\n"
            f"  target classes ({len(t)}): {', '.join(t)}\n"
            f"  only in source: {', '.join(only_s) or '-'}; only in target: {', '.join(only_t) or '-'}"
        )


class RepresentationMismatchError(TransferLabError, ValueError):
    """Source and target cannot be brought to one representation (e.g. 2-D points vs images)."""


class BudgetError(TransferLabError, ValueError):
    """A labelled-target budget larger than what the target has."""


class NonFiniteLossError(TransferLabError, FloatingPointError):
    """A loss became NaN or infinite; the run is marked failed at that step."""

    def __init__(self, step: int, terms: dict[str, float] | None = None):
        self.step = step
        detail = ""
        if terms:
            detail = " (" + ", ".join(f"{k}={v:.4g}" for k, v in terms.items()) + ")"
        super().__init__(
            f"loss became NaN or infinite at step {step}{detail}; "
            "try a lower learning rate or a smaller loss weight"
        )


class DeviceError(TransferLabError, RuntimeError):
    """A requested device that this machine does not have."""


class DatasetUnavailableError(TransferLabError, FileNotFoundError):
    """Dataset files are missing or corrupt and cannot be downloaded."""


class WeightsUnavailableError(TransferLabError, FileNotFoundError):
    """Pretrained weights are not cached and cannot be downloaded."""


class ArchiveError(TransferLabError, ValueError):
    """An uploaded archive that is unsafe (zip-slip paths, bomb-like sizes) or holds no usable images."""


class ConfinementError(TransferLabError, PermissionError):
    """A path outside the data roots that a confined caller (the app on a shared server) may read.

    The message names the path as it resolved (symlinks and ``..`` followed) and the roots that are allowed."""


class LimitError(TransferLabError, ValueError):
    """A request above a limit the server sets for the app (upload size, epochs, examples per domain).

    The message names the value, the limit and the environment variable that sets it."""


class RunNotFoundError(TransferLabError, KeyError):
    """No stored run has this id."""

    def __str__(self) -> str:
        return self.args[0]


class RunStoreError(TransferLabError):
    """The run database cannot be used: corrupt, unreadable, too new, or locked too long."""


class StoreCorruptError(RunStoreError):
    """The run database file is not a usable SQLite database (``path`` names it).

    :func:`tlcore.runs.quarantine_store` moves such a file aside so that a fresh store can start."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


class StoreReadOnlyError(RunStoreError):
    """A write to a run store that was opened read-only (its file or folder cannot be written)."""


class StatusError(TransferLabError, ValueError):
    """A run status that does not exist, or that is not allowed at this point."""


class ChecksumMismatch(TransferLabError, ValueError):
    """A downloaded file's checksum differs from the expected one (the file is removed)."""


class DownloadStopped(TransferLabError):
    """A download was stopped on request (the Stop button); the partial file is removed."""


class DownloadIncomplete(TransferLabError, OSError):
    """A download ended before the bytes the server announced (Content-Length) arrived; nothing is kept.

    An ``OSError``, like every network failure, so callers that report "could
    not be downloaded" treat it as one."""


class DownloadTimeout(TransferLabError, TimeoutError):
    """A server sent nothing for longer than the read timeout (a stalled download); nothing is kept."""


class PermissionDeniedError(TransferLabError, PermissionError):
    """A user asked to stop or delete a run or job that is not theirs (only its owner, or a
    teacher, may; see :mod:`tlcore.owners`)."""


class QueueFullError(TransferLabError):
    """A user already has as many jobs waiting in the queue as they may (``TRANSFER_LAB_MAX_QUEUED``)."""


class ResourceError(TransferLabError, MemoryError):
    """A run whose estimated memory peak exceeds the memory available; the message names both
    figures and the settings that lower the estimate."""
