"""How much image data may stay resident in memory, and the error that says how to reduce it.

Datasets live in memory (and on the training device) as one uint8 tensor per
split; the loop batches them by indexing. That is fast for digits and CIFAR-size
data, but an image folder at 224 px can exceed the machine. A domain's *data
mode* decides what happens above the limit (:data:`DATA_MODES`):

* ``"resident"``: loaders check the size *before* they decode anything and
  refuse with a message naming the options that shrink it (``resize=``,
  ``limit=``) and the streaming mode;
* ``"auto"`` (what runs use by default): a ``folder:`` domain above the limit is
  streamed from disk instead (:class:`tlcore.data.lazy.LazyImages`, decoded by
  ``DataLoader`` workers while training), and one below it stays resident;
* ``"stream"``: ``folder:`` domains are always streamed.

The limit is ``$TRANSFER_LAB_MAX_RESIDENT_MB`` megabytes (default 2048) for
one domain's images, train and test together.
"""
from __future__ import annotations

import math
import os

from ..errors import SpecError

MAX_RESIDENT_ENV = "TRANSFER_LAB_MAX_RESIDENT_MB"
DEFAULT_MAX_RESIDENT_MB = 2048
DATA_MODES = ("auto", "resident", "stream")
STREAM_ADVICE = ("Streaming from disk avoids the limit: run with data_mode='auto' or 'stream' "
                 "(RunConfig.data_mode; only folder: datasets stream).")


def max_resident_bytes() -> int:
    """The limit in bytes: ``$TRANSFER_LAB_MAX_RESIDENT_MB`` (megabytes) or 2048 MB."""
    text = os.environ.get(MAX_RESIDENT_ENV, "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_MAX_RESIDENT_MB
    except ValueError:
        raise SpecError(f"{MAX_RESIDENT_ENV}={text!r} is not a number of megabytes") from None
    return int(megabytes * 1024 * 1024)


def image_bytes(count: int, shape: tuple[int, ...], bytes_per_value: int = 1) -> int:
    """Bytes for ``count`` images of ``shape`` (C, H, W)."""
    return count * math.prod(shape) * bytes_per_value


def format_bytes(count: int) -> str:
    if count >= 1024**3:
        return f"{count / 1024**3:.2f} GB"
    return f"{count / 1024**2:.0f} MB"


def check_data_mode(data_mode: str) -> str:
    """``data_mode`` if it is one of :data:`DATA_MODES`, else :class:`~tlcore.errors.SpecError`."""
    if data_mode not in DATA_MODES:
        raise SpecError(f"data_mode={data_mode!r} is not one of: {', '.join(DATA_MODES)}")
    return data_mode


def exceeds_limit(count: int, shape: tuple[int, ...], bytes_per_value: int = 1) -> bool:
    """Whether ``count`` images of ``shape`` are above the resident limit."""
    return image_bytes(count, shape, bytes_per_value) > max_resident_bytes()


def check_resident_size(what: str, count: int, shape: tuple[int, ...], bytes_per_value: int = 1,
                        advice: str = "", stream_advice: str = "") -> None:
    """Raise :class:`~tlcore.errors.SpecError` when ``count`` images of ``shape`` exceed the limit.

    ``advice`` says how to shrink this particular dataset (e.g. which spec to
    write) and ``stream_advice`` whether streaming would avoid the limit; the
    message always names the size, the limit and its variable.
    """
    needed, limit = image_bytes(count, shape, bytes_per_value), max_resident_bytes()
    if needed <= limit:
        return
    kind = "uint8" if bytes_per_value == 1 else f"{8 * bytes_per_value}-bit"
    side = shape[-1]
    fit = max(8, int(side * math.sqrt(limit / needed)))
    raise SpecError(
        f"{what}: {count} images of {'×'.join(map(str, shape))} need {format_bytes(needed)} in memory as {kind}, "
        f"above the limit of {format_bytes(limit)} (set {MAX_RESIDENT_ENV} to change it). "
        f"Reduce it: {advice or ''}resize=PX with PX ≤ {fit} fits, or limit=N keeps at most N images per class."
        + (f" {stream_advice}" if stream_advice else "")
    )
