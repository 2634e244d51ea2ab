"""The engine side of the Data page's data sources: a download job's progress, a folder's preview.

* :func:`progress_reporter` turns :class:`tlcore.download.DownloadProgress` reports
  into a background :class:`tlcore.worker.Job`'s ``progress`` (0..1 over every
  planned file) and ``message`` (bytes received). It runs in the worker thread
  and only writes those two fields.
* :func:`preview_folder` inspects a folder a user named (see
  :mod:`tlcore.data.folder` for where a name points): its domains, classes and
  image counts, files that are ignored or cannot be opened as images, each
  domain with a ready ``folder:`` spec.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..download import DownloadProgress
from ..errors import DownloadStopped, SpecError
from .folder import FOLDERS_SUBDIR, inspect_folder, resolve_folder, scan_domain
from .roots import DataRoots
from .torchvision_data import resolve_data_dir

HEADER_CHECK_LIMIT = 5000    # image files whose header a preview opens (per domain)


# --------------------------------------------------------------------------- download progress
def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f}"


def progress_reporter(job, planned: int) -> Callable[[DownloadProgress], None]:
    """The ``download_dataset`` progress callback for ``job`` (a :class:`tlcore.worker.Job`).

    Sets ``job.progress`` over all ``planned`` files and ``job.message`` with the
    bytes received, and raises :class:`~tlcore.errors.DownloadStopped` at the
    next report once the job was asked to stop (pass ``stop=job.stop_event`` to
    the download as well: that one also acts while no byte arrives).
    """
    finished: set[str] = set()

    def report(p: DownloadProgress) -> None:
        if job.stop_event.is_set():
            raise DownloadStopped(f"stopped during {p.filename}")
        if p.finished:
            finished.add(p.filename)
        current = 0.0 if p.finished else (p.fraction or 0.0)
        job.progress = min(0.99, (len(finished) + current) / max(planned, 1))
        counter = f"file {min(len(finished) + (0 if p.finished else 1), max(planned, 1))} of {max(planned, 1)}"
        percent = f" ({100 * p.fraction:.0f}%)" if p.fraction is not None else ""
        job.message = (f"{p.filename}: {_mb(p.done_bytes)} of {_mb(p.total_bytes)} MB{percent} · {counter}"
                       + (" · verifying and reading the files…" if p.finished and len(finished) >= planned else ""))

    return report


# --------------------------------------------------------------------------- folder previews
@dataclass(frozen=True)
class DomainPreview:
    """One domain of a folder: the spec that names it and what it holds."""

    name: str
    spec: str
    path: Path
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    other_files: int            # files without an image extension (ignored)
    unreadable: tuple[str, ...]  # image files that do not open as images (skipped when loading)
    checked: int                # image files whose header was opened

    @property
    def images(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class FolderPreview:
    """A folder as the engine reads it: one domain (``ROOT/<class>/<image>``) or several
    (``ROOT/<domain>/<class>/<image>``), with a ready ``folder:`` spec for each."""

    argument: str
    path: Path
    kind: str
    domains: tuple[DomainPreview, ...]

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(d.spec for d in self.domains)

    def missing_classes(self) -> dict[str, tuple[str, ...]]:
        """For each domain that lacks some of the classes found in the others: those classes."""
        every = sorted({c for d in self.domains for c in d.classes})
        lacking = {d.name: tuple(c for c in every if c not in d.classes) for d in self.domains}
        return {name: classes for name, classes in lacking.items() if classes}


def folder_argument(text: str, data_dir: str | os.PathLike | None = None) -> str:
    """What the user typed as a ``folder:`` argument, tidied; refuses what a spec cannot hold."""
    argument = (text or "").strip()
    if len(argument) > 1:
        argument = argument.rstrip("/\\") or argument
    if not argument:
        raise SpecError("type a folder: an absolute path on this server, or the name of a folder under "
                        f"{resolve_data_dir(data_dir) / FOLDERS_SUBDIR}")
    if ":" in argument:
        raise SpecError(f"{argument!r} contains ':', which a dataset spec uses to separate the folder from its "
                        "shifts (folder:PATH:SHIFTS); rename the folder or link it under a name without ':'")
    return argument


def _unreadable(files: tuple[Path, ...], root: Path, limit: int) -> tuple[tuple[str, ...], int]:
    """Image files among the first ``limit`` that PIL cannot open and verify, relative to ``root``."""
    from PIL import Image

    bad = []
    for path in files[:limit]:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception:  # noqa: BLE001 - PIL raises many kinds for a broken file; the loader skips them too
            bad.append(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
    return tuple(bad), min(len(files), limit)


def _domain_preview(name: str, spec: str, path: Path, argument: str,
                    roots: DataRoots | None = None) -> DomainPreview:
    layout = scan_domain(path, argument, roots)
    counts = [0] * len(layout.classes)
    for label in layout.labels.tolist():
        counts[label] += 1
    unreadable, checked = _unreadable(layout.files, layout.root, HEADER_CHECK_LIMIT)
    return DomainPreview(name, spec, path, layout.classes, tuple(counts), layout.other_files, unreadable, checked)


def preview_folder(text: str, data_dir: str | os.PathLike | None = None,
                   roots: DataRoots | None = None) -> FolderPreview:
    """Inspect the folder the user named (see :mod:`tlcore.data.folder` for where a name points).

    Raises :class:`~tlcore.errors.TransferLabError` (not a directory, no class
    folders, a ':' in the path) with the engine's message; with ``roots`` (the
    app's), :class:`~tlcore.errors.ConfinementError` for a folder outside them
    or a link inside it that leaves them, before anything there is listed.
    """
    argument = folder_argument(text, data_dir)
    path = resolve_folder(argument, data_dir, roots)
    info = inspect_folder(path, roots)
    if info.kind == "domain":
        domains = (_domain_preview(path.name, f"folder:{argument}", path, argument, roots),)
    else:
        domains = tuple(
            _domain_preview(name, f"folder:{argument}/{domain_path.relative_to(path).as_posix()}", domain_path,
                            argument, roots)
            for name, domain_path in zip(info.domains, info.domain_paths))
    return FolderPreview(argument, path, info.kind, domains)
