"""Downloads with a progress callback: dataset files (through torchvision) and weights.

The engine never prints, so download progress goes to a callback. Two ways to
give one:

* pass ``progress=`` to a function that downloads
  (:func:`tlcore.data.torchvision_data.download_dataset`,
  :func:`tlcore.backbones.load_imagenet_weights`);
* or wrap any engine call in ``with download_progress(callback): ...``; the
  callback is held in a context variable, so it applies to the calling thread
  only (a worker thread that trains a run sees its own callback and no other).

The callback receives :class:`DownloadProgress` values: one when a file starts,
one per chunk (about every 256 KiB) and one with ``finished=True``.

``fetch_url`` writes to ``DEST.part`` and renames it into place only when the
whole file has arrived and its checksum matched, so an interrupted download
never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tlcore.errors import ChecksumMismatch  # noqa: F401 (re-exported; defined in tlcore.errors)

CHUNK_BYTES = 256 * 1024
TIMEOUT_S = 30.0
USER_AGENT = "transfer-lab (pytorch/vision)"

# What a failed download raises: no network (URLError, socket errors, timeouts
# are all OSError subclasses), or an HTTP error (also a URLError).
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError,)


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: ``done_bytes`` of ``total_bytes`` (None when the server did not say)."""

    filename: str
    url: str
    done_bytes: int
    total_bytes: int | None
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)


ProgressCallback = Callable[[DownloadProgress], None]

_progress: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar("tlcore_download_progress",
                                                                                  default=None)


@contextlib.contextmanager
def download_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Send the progress of every download made inside the block (in this thread) to ``callback``."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


def current_progress() -> ProgressCallback | None:
    """The callback set by :func:`download_progress` in this context, if any."""
    return _progress.get()




def fetch_url(url: str, destination: str | os.PathLike, *, progress: ProgressCallback | None = None,
              sha256_prefix: str | None = None, md5: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``destination`` (atomically, through ``destination.part``).

    Parameters
    ----------
    progress: callback for :class:`DownloadProgress` reports; defaults to the
        one set by :func:`download_progress`.
    sha256_prefix, md5: when given, the file must match (torch hub files carry
        the first hex digits of their SHA-256 in their name; torchvision's
        dataset files have MD5 sums).

    Raises
    ------
    OSError (``urllib.error.URLError`` and socket errors included) when the
    network fails; :class:`ChecksumMismatch` when the checksum differs.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    report = progress if progress is not None else current_progress()
    partial = destination.with_name(destination.name + ".part")
    sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as out:
            length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(length) if length and str(length).isdigit() else None
            done = 0
            if report:
                report(DownloadProgress(destination.name, url, 0, total))
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                sha.update(chunk)
                md.update(chunk)
                done += len(chunk)
                if report:
                    report(DownloadProgress(destination.name, url, done, total))
        if sha256_prefix and not sha.hexdigest().startswith(sha256_prefix):
            raise ChecksumMismatch(f"{destination.name}: SHA-256 {sha.hexdigest()[:12]}… does not start with "
                                   f"{sha256_prefix} (corrupt download)")
        if md5 and md.hexdigest() != md5:
            raise ChecksumMismatch(f"{destination.name}: MD5 {md.hexdigest()} differs from the expected {md5} "
                                   "(corrupt download)")
        os.replace(partial, destination)
    finally:
        if partial.exists():
            partial.unlink()
    if report:
        report(DownloadProgress(destination.name, url, done, total, finished=True))
    return destination


# --------------------------------------------------------------------------- torchvision's dataset downloads
_torchvision_lock = threading.Lock()


def _urlretrieve_with_progress(url: str, filename, chunk_size: int = CHUNK_BYTES) -> None:
    """Stand-in for ``torchvision.datasets.utils._urlretrieve``: same job, reported to our callback,
    written atomically. torchvision verifies the MD5 itself afterwards."""
    fetch_url(url, filename)


@contextlib.contextmanager
def torchvision_downloads() -> Iterator[None]:
    """Route torchvision's dataset downloads through :func:`fetch_url` while the block runs.

    torchvision draws its own progress bar on stderr; inside this block its
    downloader reports to the :func:`download_progress` callback instead, and
    writes through a ``.part`` file. Downloads are serialised by a lock (two
    threads fetching the same file would otherwise race). Where torchvision
    lacks the private hook (another version), its own downloader runs unchanged.
    """
    import torchvision.datasets.utils as tv_utils

    with _torchvision_lock:
        original = getattr(tv_utils, "_urlretrieve", None)
        if original is not None:
            tv_utils._urlretrieve = _urlretrieve_with_progress
        try:
            yield
        finally:
            if original is not None:
                tv_utils._urlretrieve = original
