"""Images that are decoded when they are read: the input container of a streamed domain.

A resident domain holds its images as one tensor. A domain too large for that
(:mod:`tlcore.data.limits`) holds a :class:`LazyImages` instead: the image
files (or a resident tensor that a harmonisation step would make too large)
plus the per-image transforms that shifts and harmonisation appended. It
behaves like a read-only uint8 tensor of shape ``(N, C, H, W)`` wherever code
only reads rows from it: ``len(x)``, ``x.shape``, ``x.dtype``, ``x[i]``,
``x[a:b]`` and ``x[index_tensor]`` return decoded tensors, so showing example
images, sampling a subset for a gap or extracting features needs no special
case. What it does not do is ``x.to(device)`` or whole-tensor arithmetic:
training streams it through a ``DataLoader`` with worker processes
(:mod:`tlcore.train`), and anything that needs every row iterates in chunks.

Transforms must be *per image* (row ``i`` of the output depends on row ``i``
of the input only) and picklable (module-level functions or
``functools.partial`` of them), because ``DataLoader`` workers may be started
by pickling the dataset (the ``spawn`` start method on macOS and Windows).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.utils.data

from ..errors import DatasetUnavailableError

ImageTransform = Callable[[torch.Tensor], torch.Tensor]
DECODE_THREADS = 8


class LazyImages:
    """A read-only ``(N, C, H, W)`` image sequence decoded (and transformed) on access.

    Build one with :meth:`from_files` (decode ``files`` with
    :func:`tlcore.data.folder.decode_image` at ``size``) or :meth:`from_tensor`
    (rows of a resident tensor). :meth:`take` selects rows and :meth:`map`
    appends a per-image transform; both return a new view and decode nothing.
    """

    ndim = 4
    device = torch.device("cpu")

    def __init__(self, *, files: tuple[str, ...] | None = None, size: int | None = None,
                 base: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                 transforms: tuple[ImageTransform, ...] = (), item_shape: tuple[int, ...] | None = None):
        if (files is None) == (base is None):
            raise ValueError("LazyImages needs exactly one of files or base")
        self.files, self.size, self.base = files, size, base
        count = len(files) if files is not None else len(base)
        self.rows = torch.arange(count, dtype=torch.int64) if rows is None else rows.to(torch.int64)
        self.transforms = tuple(transforms)
        if item_shape is None:
            item_shape = (3, size, size) if files is not None else tuple(base.shape[1:])
        self.item_shape = tuple(int(v) for v in item_shape)
        self.dtype = torch.uint8 if files is not None else base.dtype

    @classmethod
    def from_files(cls, files: Sequence[str | os.PathLike], size: int) -> "LazyImages":
        """RGB images read from ``files``, each resized and centre-cropped to ``size``×``size`` when read."""
        return cls(files=tuple(str(f) for f in files), size=int(size))

    @classmethod
    def from_tensor(cls, x: torch.Tensor) -> "LazyImages":
        """Rows of the resident tensor ``x`` (so that transforms can apply per row when read)."""
        return cls(base=x)

    # --- tensor-like surface ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.item_shape))

    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    def __repr__(self) -> str:
        what = f"{len(self.files)} files at {self.size} px" if self.files is not None else "a resident tensor"
        return f"LazyImages({tuple(self.shape)}, {self.dtype}, from {what}, {len(self.transforms)} transform(s))"

    def positions(self, key) -> torch.Tensor:
        """Row positions (int64) that ``key`` (slice, ints, bool mask, tensor or array) selects."""
        n = len(self.rows)
        if isinstance(key, slice):
            return torch.arange(n, dtype=torch.int64)[key]
        index = torch.as_tensor(np.asarray(key) if isinstance(key, (list, tuple, np.ndarray)) else key)
        if index.dtype == torch.bool:
            if index.shape != (n,):
                raise IndexError(f"a boolean index of shape {tuple(index.shape)} does not match {n} rows")
            return torch.nonzero(index).flatten()
        index = index.to(torch.int64).reshape(-1)
        if len(index) and (int(index.max()) >= n or int(index.min()) < -n):
            raise IndexError(f"index out of range for {n} rows")
        return torch.where(index < 0, index + n, index)

    def __getitem__(self, key) -> torch.Tensor:
        """Decoded rows: ``x[i]`` is ``(C, H, W)``; slices, lists, masks and tensors give ``(k, C, H, W)``."""
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0
                                                  and key.dtype != torch.bool):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"row {i} out of range for {len(self)} rows")
            return self.read(torch.tensor([i % len(self)]))[0]
        return self.read(self.positions(key))

    # --- views --------------------------------------------------------------------------------
    def take(self, key) -> "LazyImages":
        """The rows ``key`` selects, still lazy."""
        return LazyImages(files=self.files, size=self.size, base=self.base, rows=self.rows[self.positions(key)],
                          transforms=self.transforms, item_shape=self.item_shape)

    def map(self, transform: ImageTransform) -> "LazyImages":
        """A view whose rows pass through ``transform`` (a batch ``(k, C, H, W)`` in, same dtype out)
        after the transforms already there; the new row shape is found on one blank image."""
        probe = transform(torch.zeros((1, *self.item_shape), dtype=self.dtype))
        if probe.dtype != self.dtype or probe.ndim != 4 or probe.shape[0] != 1:
            raise ValueError(f"a per-image transform must map (k, C, H, W) {self.dtype} to the same kind, "
                             f"got {tuple(probe.shape)} {probe.dtype}")
        return LazyImages(files=self.files, size=self.size, base=self.base, rows=self.rows,
                          transforms=self.transforms + (transform,), item_shape=tuple(probe.shape[1:]))

    # --- decoding -----------------------------------------------------------------------------
    def read(self, positions: torch.Tensor, threads: int | None = None) -> torch.Tensor:
        """Decode and transform the rows at ``positions``: a ``(k, C, H, W)`` tensor.

        Files are decoded in up to ``threads`` threads (default: up to 8, one
        inside ``DataLoader`` workers, which already run in parallel). A file that
        cannot be decoded raises :class:`~tlcore.errors.DatasetUnavailableError`
        naming it.
        """
        rows = self.rows[positions.to(torch.int64)]
        if self.files is not None:
            x = _decode_files([self.files[i] for i in rows.tolist()], self.size, threads)
        else:
            x = self.base[rows]
        for transform in self.transforms:
            x = transform(x)
        return x

    def materialise(self) -> torch.Tensor:
        """Every row, decoded: a resident tensor (only sensible for a small view)."""
        return self.read(torch.arange(len(self)))


def _decode_files(files: list[str], size: int, threads: int | None) -> torch.Tensor:
    from .folder import decode_image

    if threads is None:
        in_worker = torch.utils.data.get_worker_info() is not None
        threads = 1 if in_worker else max(1, min(DECODE_THREADS, os.cpu_count() or 1, len(files)))
    out = torch.empty((len(files), 3, size, size), dtype=torch.uint8)

    def one(i: int) -> None:
        array = decode_image(Path(files[i]), size)
        if array is None:
            raise DatasetUnavailableError(
                f"{files[i]}: this image cannot be decoded. A streamed folder checks each file when it is listed "
                "(header and, for PNG, checksums), but this one failed when its pixels were read (e.g. a truncated "
                "JPEG); remove or replace the file and start the run again")
        out[i] = torch.from_numpy(array)

    if threads <= 1 or len(files) <= 1:
        for i in range(len(files)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(len(files))))
    return out


def is_lazy(x) -> bool:
    """Whether ``x`` is a :class:`LazyImages` (a streamed domain's inputs) rather than a tensor."""
    return isinstance(x, LazyImages)


def take_rows(x, index: torch.Tensor):
    """Rows ``index`` of ``x``: a lazy view for :class:`LazyImages`, a new tensor otherwise."""
    return x.take(index) if is_lazy(x) else x[index]
