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
whole file has arrived (as many bytes as the server's Content-Length announced)
and its checksum matched, so an interrupted download never leaves a
half-written file under the final name.

A stalled server cannot hang a download: a read that waits longer than the
read timeout (:data:`TIMEOUT_S`) raises :class:`~tlcore.errors.DownloadTimeout`.
A download can be stopped (``stop=`` event, or the one given to
:func:`download_progress`): a small watcher shuts the connection down as soon
as the event is set, so Stop acts within a fraction of a second even while the
server sends nothing (no answer yet, or no next bytes), and
:class:`~tlcore.errors.DownloadStopped` is raised.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import http.client
import os
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

from tlcore.errors import ChecksumMismatch, DownloadIncomplete, DownloadStopped, DownloadTimeout

CHUNK_BYTES = 256 * 1024
TIMEOUT_S = 30.0       # the read timeout: the longest wait for the next bytes (and for connecting)
STOP_POLL_S = 0.2      # how often the stop watcher looks at the stop event
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
_stop: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("tlcore_download_stop", default=None)
_expected_md5: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("tlcore_download_md5",
                                                                                  default={})


@contextlib.contextmanager
def download_progress(callback: ProgressCallback | None, stop: threading.Event | None = None) -> Iterator[None]:
    """Send the progress of every download made inside the block (in this thread) to ``callback``;
    when ``stop`` is given, setting it ends the download under way (:class:`DownloadStopped`)."""
    token, stop_token = _progress.set(callback), _stop.set(stop)
    try:
        yield
    finally:
        _progress.reset(token)
        _stop.reset(stop_token)


def current_progress() -> ProgressCallback | None:
    """The callback set by :func:`download_progress` in this context, if any."""
    return _progress.get()




class _StopWatch:
    """Shuts a download's connection down as soon as ``stop`` is set, whatever it is waiting for
    (the server's answer or the next bytes), so the blocked read returns at once."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tlcore-download-stop", daemon=True)
        self._thread.start()

    def attach(self, sock: socket.socket) -> None:
        """The connection just opened (a redirect opens another)."""
        with self._lock:
            self._sock = sock
        if self.stop.is_set():
            self._shut()

    def _shut(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: a closed socket object has no descriptor
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP connection, under TLS too

    def _watch(self) -> None:
        while not self._done.wait(STOP_POLL_S):
            if self.stop.is_set():
                self._shut()
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def _opener_watched_by(watch: _StopWatch) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies from the environment, redirects), whose connections report
    their socket to ``watch`` as soon as they connect."""

    class Watched:
        def do_open(self, http_class, req, **kwargs):
            class WatchedConnection(http_class):
                def connect(self):
                    super().connect()
                    watch.attach(self.sock)

            return super().do_open(WatchedConnection, req, **kwargs)

    class HTTPHandler(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPSHandler(Watched, urllib.request.HTTPSHandler):
        pass

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def fetch_url(url: str, destination: str | os.PathLike, *, progress: ProgressCallback | None = None,
              sha256_prefix: str | None = None, md5: str | None = None, timeout: float | None = None,
              stop: threading.Event | None = None) -> Path:
    """Download ``url`` to ``destination`` (atomically, through ``destination.part``).

    Parameters
    ----------
    progress: callback for :class:`DownloadProgress` reports; defaults to the
        one set by :func:`download_progress`.
    sha256_prefix, md5: when given, the file must match (torch hub files carry
        the first hex digits of their SHA-256 in their name; torchvision's
        dataset files have MD5 sums).
    timeout: the read timeout in seconds (default :data:`TIMEOUT_S`): the
        longest wait for the connection and for each next piece of data.
    stop: an event that ends the download when set; defaults to the one given
        to :func:`download_progress`.

    Raises
    ------
    OSError (``urllib.error.URLError`` and socket errors included) when the
    network fails, :class:`DownloadIncomplete` (an OSError) when fewer bytes
    arrive than the server announced, :class:`DownloadTimeout` (an OSError)
    when the server stalls, :class:`ChecksumMismatch` when the checksum
    differs, :class:`DownloadStopped` when ``stop`` was set. In every case
    neither ``destination`` nor its ``.part`` file is left behind.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    report = progress if progress is not None else current_progress()
    stop = stop if stop is not None else _stop.get()
    timeout = TIMEOUT_S if timeout is None else timeout
    partial = destination.with_name(destination.name + ".part")
    sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    done, total, answered = 0, None, False
    if stop is not None and stop.is_set():
        raise DownloadStopped(f"stopped before {destination.name}")
    # with a stop event, the connection is watched from the moment it opens; without one, urlopen
    # as it is (the process's installed opener, and the seam the offline tests replace)
    watch = _StopWatch(stop) if stop is not None else None
    open_url = _opener_watched_by(watch).open if watch is not None else urllib.request.urlopen
    try:
        try:
            with open_url(request, timeout=timeout) as response, open(partial, "wb") as out:
                answered = True
                try:
                    length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                    total = int(length) if length and str(length).isdigit() else None
                    if report:
                        report(DownloadProgress(destination.name, url, 0, total))
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        sha.update(chunk)
                        md.update(chunk)
                        done += len(chunk)
                        if report:
                            report(DownloadProgress(destination.name, url, done, total))
                finally:
                    if watch is not None:
                        watch.close()  # before the response closes its socket
        except (OSError, ValueError) as exc:  # a connection shut down by Stop fails in several ways
            if stop is not None and stop.is_set():
                raise DownloadStopped(f"stopped during {destination.name}") from None
            timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
            if timed_out and not isinstance(exc, DownloadTimeout):
                if answered:
                    raise DownloadTimeout(f"{url}: no data for {timeout:g} s after {done} bytes (the server "
                                          "stalled); nothing was kept") from None
                raise DownloadTimeout(f"{url}: no answer within {timeout:g} s (the server stalled or cannot be "
                                      "reached); nothing was kept") from None
            raise
        except http.client.HTTPException as exc:  # e.g. IncompleteRead: a chunked reply cut short
            if stop is not None and stop.is_set():
                raise DownloadStopped(f"stopped during {destination.name}") from None
            raise DownloadIncomplete(f"{url}: the reply ended early after {done} bytes ({type(exc).__name__}); "
                                     "nothing was kept") from None
        if stop is not None and stop.is_set():
            raise DownloadStopped(f"stopped during {destination.name}")
        if total is not None and done != total:
            raise DownloadIncomplete(f"{url}: the server announced {total} bytes but the connection ended after "
                                     f"{done} (interrupted download); nothing was kept")
        if sha256_prefix and not sha.hexdigest().startswith(sha256_prefix):
            raise ChecksumMismatch(f"{destination.name}: SHA-256 {sha.hexdigest()[:12]}… does not start with "
                                   f"{sha256_prefix} (corrupt download)")
        if md5 and md.hexdigest() != md5:
            raise ChecksumMismatch(f"{destination.name}: MD5 {md.hexdigest()} differs from the expected {md5} "
                                   "(corrupt download)")
        os.replace(partial, destination)
    finally:
        if watch is not None:
            watch.close()
        if partial.exists():
            partial.unlink()
    if report:
        report(DownloadProgress(destination.name, url, done, total, finished=True))
    return destination


# --------------------------------------------------------------------------- torchvision's dataset downloads
_route_lock = threading.Lock()   # guards installing and restoring the hooks, never held while downloading
_route_users = 0
_route_originals: dict[str, object] = {}


def _urlretrieve_with_progress(url: str, filename, chunk_size: int = CHUNK_BYTES) -> None:
    """Stand-in for ``torchvision.datasets.utils._urlretrieve``: same job, reported to our callback,
    written atomically, with the read timeout, Stop, the length check and the MD5 that
    :func:`torchvision_downloads` was given for this file (torchvision checks it again afterwards)."""
    fetch_url(url, filename, md5=_expected_md5.get().get(str(Path(filename).resolve())))


def _url_as_given(url: str, max_hops: int = 3) -> str:
    """Stand-in for ``torchvision.datasets.utils._get_redirect_url``, which opens the URL once more
    with no timeout only to look for a Google Drive redirect (none of our datasets lives there);
    urllib follows redirects itself when the file is fetched."""
    return url


@contextlib.contextmanager
def torchvision_downloads(md5s: Mapping[str | os.PathLike, str] | None = None) -> Iterator[None]:
    """Route torchvision's dataset downloads through :func:`fetch_url` while the block runs.

    ``md5s`` maps each file torchvision may download (its full path) to its MD5,
    so a corrupt or cut-short file never reaches its final name. torchvision
    draws its own progress bar on stderr; inside this block its downloader
    reports to the :func:`download_progress` callback instead. The hooks are
    installed while any thread is inside such a block and no lock is held while
    downloading, so one stalled download never holds up another. Where
    torchvision lacks the private hooks (another version), its own downloader
    runs unchanged.
    """
    global _route_users
    import torchvision.datasets.utils as tv_utils

    token = _expected_md5.set({str(Path(path).resolve()): digest for path, digest in (md5s or {}).items()})
    with _route_lock:
        if _route_users == 0:
            for name, replacement in (("_urlretrieve", _urlretrieve_with_progress),
                                      ("_get_redirect_url", _url_as_given)):
                if hasattr(tv_utils, name):
                    _route_originals[name] = getattr(tv_utils, name)
                    setattr(tv_utils, name, replacement)
        _route_users += 1
    try:
        yield
    finally:
        with _route_lock:
            _route_users -= 1
            if _route_users == 0:
                for name, original in _route_originals.items():
                    setattr(tv_utils, name, original)
                _route_originals.clear()
        _expected_md5.reset(token)
