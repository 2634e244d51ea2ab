"""Real datasets through torchvision's own dataset classes, on torchvision's on-disk layout.

Spec names: ``mnist``, ``fashion_mnist``, ``kmnist``, ``usps``, ``svhn``,
``mnistm`` (an MNIST-M-style reconstruction), and ``cifar10`` / ``stl10``
restricted to their nine shared classes. Each loader has the registry
signature ``(seed, part, data_dir=None, **load_options) -> Domain``.

The data directory (``data_dir``; ``None`` means
:func:`tlcore.paths.default_data_dir`, i.e. ``$TRANSFER_LAB_DATA`` or
``<home>/data``) is the ``root`` handed to every torchvision class, so it looks
exactly as it does after ``torchvision.datasets.X(root=DIR, download=True)``::

    DIR/MNIST/raw/train-images-idx3-ubyte(.gz) ...     (also FashionMNIST/, KMNIST/)
    DIR/usps.bz2, DIR/usps.t.bz2
    DIR/train_32x32.mat, DIR/test_32x32.mat             (SVHN)
    DIR/cifar-10-batches-py/data_batch_1 ... test_batch, batches.meta
    DIR/stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin

Getting the files:

* every expected file is checked first: present, MD5 as torchvision lists it
  (for MNIST-style ``raw`` files, which have no published checksum, the IDX
  header against the file size). A present but corrupt or half-downloaded file
  raises :class:`~tlcore.errors.DatasetUnavailableError` naming it; it is never
  deleted or overwritten;
* a file whose MD5 differs from torchvision's is ``unverified``, not refused
  outright: a user's own good copy (say, USPS re-compressed) differs in its
  bytes only. It is read, and loads when its content is well formed: it
  decodes, with the published number of examples (:data:`EXPECTED_COUNTS`),
  image shape and labels. The dataset then carries a warning
  (:attr:`Domain.warnings`; recorded with a run as ``data_warnings`` and
  shown on Train). A truncated or undecodable file is refused with the
  corrupt-file message. (Downloads are still verified against torchvision's
  MD5 before a file takes its name.);
* missing files are fetched by the torchvision class itself (``download=True``),
  through :func:`tlcore.download.fetch_url`: each file arrives as ``NAME.part``
  and takes its name only once its length and torchvision's MD5 match, with a
  read timeout, so an interrupted or stalled download leaves nothing behind.
  An archive already in place (e.g. ``MNIST/raw/*.gz`` or
  ``cifar-10-python.tar.gz``) is verified and extracted without the network.
  Download progress goes to the :func:`tlcore.download.download_progress`
  callback (no printing), and its ``stop`` event ends a download;
* :func:`remove_corrupt_files` deletes exactly the files found corrupt, so
  they can be downloaded again (the Data page's "delete and download again");
* offline, the network error becomes a :class:`DatasetUnavailableError` that
  names every expected file, where to put it and where it comes from.

Images stay uint8 ``(N, C, H, W)``: MNIST's 60,000 training images take 47 MB.
The loop converts each batch to float in [0, 1]. Loaded datasets are kept per
process (a few, least recently used first out), keyed by the files' sizes and
modification times; callers must not modify the returned tensors in place (no
shift does). Loading takes a lock per dataset and directory (two threads must
not download the same files at once), never one for the whole process: a slow
download of one dataset does not hold up loading another.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch

from ..download import NETWORK_ERRORS, ProgressCallback, download_progress, torchvision_downloads
from ..errors import ChecksumMismatch, DatasetUnavailableError, SpecError
from .builtin import stratified_split
from .domain import Domain
from .limits import check_resident_size
from .shifts import derive_generator, format_value, resize_images, texture_photos

DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
# CIFAR-10 and STL-10 share nine classes; CIFAR's "automobile" is STL's "car".
# CIFAR-10's frog and STL-10's monkey are dropped so that the two form a pair.
SHARED_OBJECT_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "ship", "truck")
OBJECT_NAME_ALIASES = {"automobile": "car"}
STL10_DEFAULT_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
STL10_NATIVE_SIZE = 96
STL10_DEFAULT_SIZE = 32
MNISTM_SEED = 20160501  # fixed: like the published MNIST-M, the same images in every run
MNISTM_PHOTO_SCALES = (56, 112, 224)  # short side of the photographs that patches are cropped from
BASE_CACHE_SIZE = 3

FileState = Literal["ok", "extract", "missing", "corrupt", "unverified"]

# The published size of each split and the image shape, (train, test, (C, H, W)): a file whose
# checksum differs from torchvision's loads only when its content matches these.
EXPECTED_COUNTS: dict[str, tuple[int, int, tuple[int, int, int]]] = {
    "usps": (7291, 2007, (1, 16, 16)),
    "svhn": (73257, 26032, (3, 32, 32)),
    "cifar10": (50000, 10000, (3, 32, 32)),
    "stl10": (5000, 8000, (3, 96, 96)),
}


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` as a path; ``None`` or ``""`` means :func:`tlcore.paths.default_data_dir`."""
    from ..paths import default_data_dir

    return Path(data_dir).expanduser() if data_dir else default_data_dir()


# --------------------------------------------------------------------------- expected files
@dataclass(frozen=True)
class ExpectedFile:
    """One file a dataset needs, where torchvision looks for it, and how to check it.

    ``archive`` is a download that provides the file once extracted (an MNIST
    ``.gz``, the CIFAR ``.tar.gz``); ``validate`` checks a file that has no
    published checksum and returns a problem in words, or None.
    """

    path: Path
    md5: str | None
    url: str
    archive: Path | None = None
    archive_md5: str | None = None
    validate: Callable[[Path], str | None] | None = None


@dataclass(frozen=True)
class FileStatus:
    """What was found for one expected file: ``ok``, ``extract`` (a verified archive is there),
    ``missing``, ``corrupt``, or ``unverified`` (present, its MD5 differs from torchvision's: read
    and checked for well-formed content at load time) (``detail`` says why and names the file)."""

    path: Path
    state: FileState
    detail: str = ""


_md5_memo: dict[tuple[str, int, int], str] = {}
_md5_lock = threading.Lock()


def file_md5(path: Path) -> str:
    """MD5 of ``path``, remembered per (path, size, modification time) within the process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _md5_lock:
        if key in _md5_memo:
            return _md5_memo[key]
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    with _md5_lock:
        _md5_memo[key] = digest.hexdigest()
    return _md5_memo[key]


def check_idx_file(path: Path) -> str | None:
    """Check an uncompressed IDX file (MNIST's format) against its own header.

    IDX: two zero bytes, a type byte (0x08 = uint8), the number of dimensions,
    then one big-endian uint32 per dimension, then the values. Returns the
    problem in words, or None when the size matches the header.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        magic = handle.read(4)
        if len(magic) < 4:
            return f"{path} is {size} bytes, shorter than an IDX header (truncated?)"
        if magic[0] or magic[1] or magic[2] != 0x08 or magic[3] not in (1, 3):
            return f"{path} is not an IDX file of uint8 values (magic bytes {magic.hex()}; corrupt?)"
        dims_bytes = handle.read(4 * magic[3])
    if len(dims_bytes) < 4 * magic[3]:
        return f"{path} is {size} bytes, too short for its IDX header (truncated?)"
    dims = struct.unpack(f">{magic[3]}I", dims_bytes)
    expected = 4 + 4 * len(dims) + math.prod(dims)
    if size != expected:
        shape = "×".join(map(str, dims))
        problem = "truncated (half-downloaded or half-extracted?)" if size < expected else "longer than its header says"
        return f"{path} is {size} bytes but its IDX header ({shape} values) needs {expected}: {problem}"
    return None


def _mnist_family_files(root: Path, cls) -> list[ExpectedFile]:
    raw = root / cls.__name__ / "raw"
    return [
        ExpectedFile(raw / gz_name[:-3], None, cls.mirrors[0] + gz_name, archive=raw / gz_name, archive_md5=md5,
                     validate=check_idx_file)
        for gz_name, md5 in cls.resources
    ]


def _tv(name: str):
    import torchvision.datasets as datasets  # lazy: torchvision takes a while to import

    return getattr(datasets, name)


def expected_files(name: str, data_dir: str | os.PathLike | None = None) -> list[ExpectedFile]:
    """The files dataset ``name`` needs under the data directory, in torchvision's layout."""
    root = resolve_data_dir(data_dir)
    source = _source(name)
    if source.family == "mnist":
        return _mnist_family_files(root, _tv(source.torchvision_class))
    if source.family in ("usps", "svhn"):
        split_list = _tv(source.torchvision_class).split_list
        return [ExpectedFile(root / split_list[split][1], split_list[split][2], split_list[split][0])
                for split in ("train", "test")]
    cls = _tv(source.torchvision_class)  # CIFAR10, STL10: one archive holds every file
    folder = root / cls.base_folder
    members = list(cls.train_list) + list(cls.test_list)
    if source.family == "cifar":
        members.append([cls.meta["filename"], cls.meta["md5"]])
    return [ExpectedFile(folder / filename, md5, cls.url, archive=root / cls.filename, archive_md5=cls.tgz_md5)
            for filename, md5 in members]


def _status(expected: ExpectedFile) -> FileStatus:
    path = expected.path
    if path.is_file():
        if expected.md5 is not None and file_md5(path) != expected.md5:
            return FileStatus(path, "unverified",
                              f"{path} is present but its MD5 checksum {file_md5(path)} differs from "
                              f"torchvision's {expected.md5} (a different copy, or corrupt or half-downloaded)")
        problem = expected.validate(path) if expected.validate is not None else None
        return FileStatus(path, "corrupt", problem) if problem else FileStatus(path, "ok")
    archive = expected.archive
    if archive is not None and archive.is_file():
        if expected.archive_md5 is not None and file_md5(archive) != expected.archive_md5:
            return FileStatus(archive, "corrupt",
                              f"{archive} is present but its MD5 checksum {file_md5(archive)} differs from "
                              f"torchvision's {expected.archive_md5} (corrupt or half-downloaded)")
        return FileStatus(path, "extract", f"{path} will be extracted from {archive}")
    return FileStatus(path, "missing", f"{path} is missing")


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> list[FileStatus]:
    """Check every file of dataset ``name`` (present, checksum, IDX size); touches no network.

    ``mnistm`` is built from ``mnist`` and reports MNIST's files.
    """
    return [_status(expected) for expected in expected_files(name, data_dir)]


def download_checksums(name: str, data_dir: str | os.PathLike | None = None) -> dict[Path, str]:
    """What a download of ``name`` may fetch (a file, or the archive that holds it) -> its MD5."""
    checksums = {}
    for expected in expected_files(name, data_dir):
        path, digest = (expected.archive, expected.archive_md5) if expected.archive else (expected.path, expected.md5)
        if digest:
            checksums[path] = digest
    return checksums


def planned_downloads(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """How many files a download of ``name`` fetches now: one per missing archive or file."""
    root = resolve_data_dir(data_dir)
    fetch = {expected.archive or expected.path
             for expected, status in zip(expected_files(name, root), dataset_status(name, root))
             if status.state == "missing"}
    return len(fetch)


def remove_corrupt_files(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Delete exactly the files of dataset ``name`` that :func:`dataset_status` finds corrupt.

    Only files inside the data directory are touched; present and verified
    files stay. Returns the paths removed (then ``missing``: a download fetches
    them afresh). Raises :class:`DatasetUnavailableError` when one cannot be
    removed.
    """
    root = resolve_data_dir(data_dir).resolve()
    removed = []
    for status in dataset_status(name, root):
        if status.state != "corrupt":
            continue
        path = status.path
        if not path.resolve().is_relative_to(root):  # a link out of the data directory: not ours to delete
            raise DatasetUnavailableError(f"{path} is corrupt but lies outside the data directory {root} "
                                          "(a link?); replace it by hand")
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DatasetUnavailableError(f"{path} is corrupt and cannot be deleted ({exc.strerror or exc}); "
                                          "delete it by hand") from None
        removed.append(path)
    return removed


# --------------------------------------------------------------------------- messages
def _missing_message(name: str, root: Path, statuses: list[FileStatus], reason: str) -> str:
    source = _source(name)
    expected = expected_files(name, root)
    lines = [f"dataset {name!r} ({source.title}) is not complete in {root} and could not be downloaded ({reason})."]
    downloads: dict[Path, tuple[str, list[str]]] = {}  # what to fetch -> (url, files it provides)
    for status, file in zip(statuses, expected):
        if status.state != "ok":
            key = file.archive if file.archive is not None else file.path
            downloads.setdefault(key, (file.url, []))[1].append(str(file.path.relative_to(root)))
    lines.append(f"Put these files under {root} (torchvision's layout for root={root}); downloaded archives are "
                 "verified and extracted automatically:")
    for path, (url, provides) in downloads.items():
        provided = [item for item in provides if item != str(path.relative_to(root))]
        extracted = f"  (or, extracted: {', '.join(provided)})" if provided else ""
        lines.append(f"  {path.relative_to(root)}  from {url}{extracted}")
    lines.append(f"or, on a machine with network, run: tlcore download {name} --data-dir DIR and copy DIR here.")
    return "\n".join(lines)


def _corrupt_message(name: str, corrupt: list[FileStatus]) -> str:
    lines = [f"dataset {name!r}: {len(corrupt)} file(s) are corrupt or incomplete:"]
    lines += [f"  {status.detail}" for status in corrupt]
    lines.append("Delete them and run again to download them afresh (or replace them with good copies).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading through torchvision
@dataclass(frozen=True)
class Base:
    """A whole dataset as loaded from disk: uint8 (N, C, H, W) images, int64 labels, class names."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """How to read one spec name: its torchvision class, its file family and its words."""

    name: str
    title: str
    torchvision_class: str
    family: Literal["mnist", "usps", "svhn", "cifar", "stl"]
    summary: str


SOURCES: dict[str, Source] = {
    "mnist": Source("mnist", "MNIST", "MNIST", "mnist",
                    "MNIST handwritten digits (LeCun et al. 1998): 60000 train / 10000 test, 1×28×28"),
    "mnistm": Source("mnistm", "MNIST-M (reconstruction)", "MNIST", "mnist",
                     "MNIST-M-style reconstruction: MNIST digits blended with colour photo patches as in Ganin et al. "
                     "2016 (scikit-learn's photos, not BSDS500), fixed seed: 60000 train / 10000 test, 3×28×28"),
    "usps": Source("usps", "USPS", "USPS", "usps",
                   "USPS handwritten digits (Hull 1994): 7291 train / 2007 test, 1×16×16"),
    "svhn": Source("svhn", "SVHN", "SVHN", "svhn",
                   "SVHN house-number digits (Netzer et al. 2011), cropped: 73257 train / 26032 test, 3×32×32"),
    "fashion_mnist": Source("fashion_mnist", "Fashion-MNIST", "FashionMNIST", "mnist",
                            "Fashion-MNIST clothing (Xiao et al. 2017): 60000 train / 10000 test, 1×28×28, 10 classes"),
    "kmnist": Source("kmnist", "Kuzushiji-MNIST", "KMNIST", "mnist",
                     "Kuzushiji-MNIST cursive Japanese (Clanuwat et al. 2018): 60000 train / 10000 test, 1×28×28"),
    "cifar10": Source("cifar10", "CIFAR-10", "CIFAR10", "cifar",
                      "CIFAR-10 (Krizhevsky 2009), the 9 classes shared with STL-10 (frog dropped): "
                      "45000 train / 9000 test, 3×32×32"),
    "stl10": Source("stl10", "STL-10", "STL10", "stl",
                    "STL-10 (Coates et al. 2011), the 9 classes shared with CIFAR-10 (monkey dropped): "
                    "4500 train / 7200 test, 96×96 downsampled to 3×32×32 (stl10:resize=96 keeps 96)"),
}


def _source(name: str) -> Source:
    if name not in SOURCES:
        from ..errors import UnknownNameError

        raise UnknownNameError("torchvision dataset", name, SOURCES)
    return SOURCES[name]


def _construct(source: Source, root: Path, split: str, download: bool, trust_files: bool = False):
    """torchvision's dataset object for ``split``. ``trust_files`` skips torchvision's own MD5 check
    on opening (SVHN, CIFAR-10, STL-10 check in ``__init__``): the caller checks the content instead."""
    cls = _tv(source.torchvision_class)
    if trust_files and hasattr(cls, "_check_integrity"):
        cls = type(cls.__name__, (cls,), {"_check_integrity": lambda self: True})
    if source.family in ("svhn", "stl"):
        return cls(str(root), split=split, download=download)
    return cls(str(root), train=(split == "train"), download=download)


def _as_tensors(dataset, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision dataset object's images as uint8 (N, C, H, W) and labels as int64."""
    if family == "mnist":
        return dataset.data.unsqueeze(1).contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)
    if family == "usps":
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).unsqueeze(1)
        return images, torch.as_tensor(dataset.targets, dtype=torch.int64)
    if family == "cifar":  # stored (N, H, W, C)
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(dataset.targets, dtype=torch.int64)
    labels = torch.from_numpy(np.asarray(dataset.labels).astype(np.int64))  # svhn, stl: (N, C, H, W)
    return torch.from_numpy(np.ascontiguousarray(dataset.data)), labels


def _content_problem(name: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> str | None:
    """Whether files read despite a checksum mismatch hold the published content: the number of
    examples per split, the image shape and labels in range (see :data:`EXPECTED_COUNTS`)."""
    if name not in EXPECTED_COUNTS:
        return f"no published size to check {name}'s content against"
    n_train, n_test, shape = EXPECTED_COUNTS[name]
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = splits[split]
        if tuple(x.shape[1:]) != shape:
            return f"its {split} images are {'×'.join(map(str, x.shape[1:]))}, not {'×'.join(map(str, shape))}"
        if len(x) != n or len(y) != n:
            return f"its {split} split holds {len(x)} images and {len(y)} labels, not the published {n}"
        if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
            return f"its {split} labels run from {int(y.min())} to {int(y.max())}, outside 0–9"
    return None


def _read_unverified(source: Source, root: Path, unverified: list[FileStatus]):
    """Read files whose MD5 differs from torchvision's; keep them only when their content is well formed."""
    splits, classes = {}, None
    try:
        for split in ("train", "test"):
            dataset = _construct(source, root, split, download=False, trust_files=True)
            splits[split] = _as_tensors(dataset, source.family)
            classes = getattr(dataset, "classes", None) or classes
        problem = _content_problem(source.name, splits)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, RuntimeError, pickle.UnpicklingError,
            struct.error, NotImplementedError) as exc:
        problem = f"it could not be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    if problem:
        raise DatasetUnavailableError(_corrupt_message(source.name, unverified)
                                      + f"\nThe content was checked too: {problem}.") from None
    counts = EXPECTED_COUNTS[source.name]
    warnings = tuple(
        f"{status.path.name}: its MD5 checksum differs from torchvision's, but its content checked out "
        f"({counts[0]} train / {counts[1]} test examples, {'×'.join(map(str, counts[2]))}, labels 0–9); "
        "loaded as a copy other than the published file"
        for status in unverified)
    return splits["train"], splits["test"], tuple(classes) if classes else None, warnings


def _read_both_splits(source: Source, root: Path) -> tuple[tuple, tuple, tuple[str, ...] | None, tuple[str, ...]]:
    """Check the files, download what is missing, read train and test through torchvision.

    Returns train, test, the class names torchvision gives (or None) and warnings about the files."""
    statuses = dataset_status(source.name, root)
    corrupt = [status for status in statuses if status.state == "corrupt"]
    unverified = [status for status in statuses if status.state == "unverified"]
    fetch = any(status.state not in ("ok", "unverified") for status in statuses)
    if corrupt or (unverified and fetch):  # a download would overwrite the unverified copy: not ours to replace
        raise DatasetUnavailableError(_corrupt_message(source.name, corrupt + unverified))
    if unverified:
        return _read_unverified(source, root, unverified)
    splits, classes = {}, None
    try:
        with torchvision_downloads(download_checksums(source.name, root)) if fetch else contextlib.nullcontext():
            for split in ("train", "test"):
                dataset = _construct(source, root, split, download=fetch)
                splits[split] = _as_tensors(dataset, source.family)
                classes = getattr(dataset, "classes", None) or classes
    except DatasetUnavailableError:
        raise
    except (RuntimeError, ChecksumMismatch, *NETWORK_ERRORS) as exc:  # a failed download left nothing behind
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        if fetch:
            after = dataset_status(source.name, root)
            bad = [status for status in after if status.state == "corrupt"]
            if bad:
                raise DatasetUnavailableError(_corrupt_message(source.name, bad)) from None
            raise DatasetUnavailableError(_missing_message(source.name, root, after, reason)) from None
        raise DatasetUnavailableError(f"dataset {source.name!r}: torchvision could not read its files in {root}: "
                                      f"{reason}") from None
    except (EOFError, ValueError, KeyError, IndexError, pickle.UnpicklingError, struct.error) as exc:
        names = ", ".join(str(e.path) for e in expected_files(source.name, root))
        raise DatasetUnavailableError(
            f"dataset {source.name!r}: its files could not be parsed ({type(exc).__name__}: {exc}); "
            f"check or delete: {names}"
        ) from None
    return splits["train"], splits["test"], tuple(classes) if classes else None, ()


def _restrict(x: torch.Tensor, y: torch.Tensor, names: tuple[str, ...],
              keep: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose class (after aliases) is in ``keep``, relabelled to ``keep``'s order."""
    canonical = [OBJECT_NAME_ALIASES.get(name, name) for name in names]
    missing = [name for name in keep if name not in canonical]
    if missing:
        raise DatasetUnavailableError(f"class names {', '.join(canonical)} lack {', '.join(missing)}")
    relabel = torch.tensor([keep.index(name) if name in keep else -1 for name in canonical], dtype=torch.int64)
    new_y = relabel[y]
    rows = torch.nonzero(new_y >= 0).flatten()
    return x[rows], new_y[rows]


def _build_base(source: Source, root: Path, size: int | None) -> Base:
    if source.name == "mnistm":  # built from MNIST, which is read (or found in memory) first
        mnist = load_base("mnist", root)
        return Base(mnistm_blend(mnist.x_train, derive_generator("mnistm", MNISTM_SEED, "train")), mnist.y_train,
                    mnistm_blend(mnist.x_test, derive_generator("mnistm", MNISTM_SEED, "test")), mnist.y_test,
                    mnist.class_names, mnist.warnings)
    (x_train, y_train), (x_test, y_test), classes, warnings = _read_both_splits(source, root)
    if source.family == "cifar":
        names = classes or ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
        x_train, y_train = _restrict(x_train, y_train, names, SHARED_OBJECT_CLASSES)
        x_test, y_test = _restrict(x_test, y_test, names, SHARED_OBJECT_CLASSES)
        return Base(x_train, y_train, x_test, y_test, SHARED_OBJECT_CLASSES, warnings)
    if source.family == "stl":
        names = classes if classes and len(classes) == 10 else STL10_DEFAULT_CLASSES
        x_train, y_train = _restrict(x_train, y_train, names, SHARED_OBJECT_CLASSES)
        x_test, y_test = _restrict(x_test, y_test, names, SHARED_OBJECT_CLASSES)
        if size is not None and size != x_train.shape[-1]:
            check_resident_size(f"stl10:resize={size}", len(y_train) + len(y_test), (3, size, size))
            x_train, x_test = resize_images(x_train, (size, size)), resize_images(x_test, (size, size))
        return Base(x_train, y_train, x_test, y_test, SHARED_OBJECT_CLASSES, warnings)
    if source.torchvision_class in ("MNIST", "USPS", "SVHN"):
        names = DIGIT_CLASSES
    else:  # Fashion-MNIST, KMNIST: torchvision's class names
        names = tuple(classes) if classes else tuple(str(i) for i in range(10))
    return Base(x_train, y_train, x_test, y_test, names, warnings)


_cache: OrderedDict[tuple, Base] = OrderedDict()
_cache_lock = threading.Lock()
_dataset_locks: dict[tuple[str, str], threading.Lock] = {}  # one per dataset name and directory used


def _dataset_lock(name: str, root: Path) -> threading.Lock:
    """The lock for loading (and so downloading) ``name`` into ``root``: two threads must not download
    the same files at once, but a download of one dataset must not hold up loading another."""
    with _cache_lock:
        return _dataset_locks.setdefault((name, str(root.resolve())), threading.Lock())


def _signature(name: str, root: Path) -> tuple:
    """Sizes and modification times of the files a dataset reads: a changed file invalidates the cache."""
    parts = []
    for expected in expected_files(name, root):
        for path in (expected.path, expected.archive):
            if path is not None and path.is_file():
                stat = path.stat()
                parts.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(parts)


def load_base(name: str, data_dir: str | os.PathLike | None = None, size: int | None = None) -> Base:
    """The whole dataset ``name`` (both splits, all training examples), read once per process.

    ``size`` is only used by ``stl10`` (its images are downsampled while loading).
    Raises :class:`DatasetUnavailableError` when files are missing and cannot be
    downloaded, or are corrupt.
    """
    source = _source(name)
    root = resolve_data_dir(data_dir)
    with _dataset_lock(name, root):  # mnistm takes its own lock, then mnist's
        key = (name, str(root.resolve()), size, _signature(name, root))
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        base = _build_base(source, root, size)
        key = (name, str(root.resolve()), size, _signature(name, root))  # files may have just arrived
        with _cache_lock:
            _cache[key] = base
            while len(_cache) > BASE_CACHE_SIZE:
                _cache.popitem(last=False)
    return base


def clear_cache() -> None:
    """Forget the datasets held in memory (tests; or after replacing files by hand)."""
    with _cache_lock:
        _cache.clear()
    with _md5_lock:
        _md5_memo.clear()


def download_dataset(name: str, data_dir: str | os.PathLike | None = None,
                     progress: ProgressCallback | None = None,
                     stop: threading.Event | None = None) -> list[FileStatus]:
    """Make sure dataset ``name`` is complete in the data directory: download and verify what is missing.

    ``progress`` receives :class:`tlcore.download.DownloadProgress` reports;
    setting ``stop`` ends the download at once (even while the server sends
    nothing) with :class:`~tlcore.errors.DownloadStopped`, and the file that was
    arriving is removed. Returns the final file statuses (all ``ok``). Raises
    :class:`DatasetUnavailableError` offline, after a stalled or cut-short
    download, or for corrupt files.
    """
    hooks = progress is not None or stop is not None
    with download_progress(progress, stop) if hooks else contextlib.nullcontext():
        load_base("mnist" if name == "mnistm" else name, data_dir)
    return dataset_status(name, data_dir)


# --------------------------------------------------------------------------- MNIST-M
def mnistm_blend(digits: torch.Tensor, generator: torch.Generator, chunk: int = 8192) -> torch.Tensor:
    """MNIST-M-style images: ``|patch − digit|`` per channel, uint8 (N, 3, H, W).

    Ganin et al. (JMLR 2016, section 5.1.2) built MNIST-M by combining each
    MNIST digit with a patch randomly cropped from a BSDS500 colour photograph:
    ``out = |patch − digit|``. This reconstruction crops scikit-learn's two
    bundled photographs instead, each downscaled to a short side of 56, 112 or
    224 pixels (chosen at random per image), with a random horizontal flip.
    All random choices are drawn up front from ``generator``, so the result does
    not depend on ``chunk``.
    """
    n, _, height, width = digits.shape
    photos = [texture_photos(short) for short in MNISTM_PHOTO_SCALES]  # each (2, H, W, 3) float
    scale = torch.randint(len(photos), (n,), generator=generator)
    which = torch.randint(photos[0].shape[0], (n,), generator=generator)
    unit_top, unit_left = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty((n, 3, height, width), dtype=torch.uint8)
    rows_offset, cols_offset = torch.arange(height), torch.arange(width)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        digit = digits[start:stop].float().div(255.0)  # (n, 1, H, W)
        patches = torch.empty((stop - start, height, width, 3))
        for index, photo in enumerate(photos):
            members = torch.nonzero(scale[start:stop] == index).flatten()
            if len(members) == 0:
                continue
            global_index = members + start
            photo_height, photo_width = photo.shape[1:3]
            top = (unit_top[global_index] * (photo_height - height + 1)).long().clamp(max=photo_height - height)
            left = (unit_left[global_index] * (photo_width - width + 1)).long().clamp(max=photo_width - width)
            cols = left[:, None] + cols_offset
            cols = torch.where(flip[global_index][:, None], cols.flip(1), cols)
            rows = top[:, None] + rows_offset
            patches[members] = photo[which[global_index][:, None, None], rows[:, :, None], cols[:, None, :]]
        blended = (patches.permute(0, 3, 1, 2) - digit).abs()
        out[start:stop] = blended.mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------- loaders (registry signature)
def _halves(name: str, y: torch.Tensor, seed: int, part: int | None) -> tuple[torch.Tensor | None, str]:
    if part is None:
        return None, ""
    if part not in (0, 1):
        raise SpecError(f"part must be None, 0 or 1, got {part!r}")
    halves = stratified_split(y, 0.5, derive_generator(name, seed, "halves"))
    return halves[part], f"; training half {part} of 2 (stratified, disjoint from the other half)"


def _describe_base(source: Source, root: Path, base: Base) -> str:
    c, h, w = base.x_train.shape[1:]
    return (f"{source.title} from {root} via torchvision.datasets.{source.torchvision_class}: "
            f"{len(base.y_train)} train / {len(base.y_test)} test images, {c}×{h}×{w} uint8 "
            f"(0–255, scaled to [0, 1] per batch), {len(base.class_names)} classes")


def load_torchvision(name: str, seed: int, part: int | None = None, data_dir: str | os.PathLike | None = None,
                     resize: float | None = None) -> Domain:
    """Load spec name ``name`` as a :class:`Domain` (see the module docstring).

    ``part`` 0 / 1 takes one of two stratified halves of the training set,
    chosen with ``seed``; the test set never depends on ``part``. ``resize`` is
    a load option of ``stl10`` only (a leading ``resize=`` in its spec).
    """
    source = _source(name)
    root = resolve_data_dir(data_dir)
    steps = []
    size = None
    if source.family == "stl":
        size = STL10_DEFAULT_SIZE if resize is None else int(resize)
        if resize is not None and not float(resize).is_integer():
            raise SpecError(f"resize={format_value(resize)}: resize must be a whole number")
    base = load_base(name, root, size=size)
    steps.append(_describe_base(source, root, base))
    if source.family == "cifar":
        steps[-1] += "; frog dropped, automobile named car, to share STL-10's classes"
    if source.family == "stl":
        steps[-1] += "; monkey dropped to share CIFAR-10's classes; the unlabelled split is not used"
        if size != STL10_NATIVE_SIZE:
            steps.append(f"downsampled from {STL10_NATIVE_SIZE}×{STL10_NATIVE_SIZE} to {size}×{size} while loading "
                         "(bilinear, antialiased), as usual for CIFAR-10 ↔ STL-10 (French et al., ICLR 2018)"
                         + ("; write stl10:resize=96 for the full resolution" if resize is None else ""))
    if name == "mnistm":
        steps.append(
            "MNIST-M-style reconstruction (after Ganin et al., JMLR 2016): each digit d in [0, 1] combined with a "
            "random 28×28 crop p of a colour photograph as |p − d| per channel. The published MNIST-M crops BSDS500 "
            "photographs; this one crops scikit-learn's two sample photographs (china.jpg, flower.jpg) at short "
            f"sides {', '.join(map(str, MNISTM_PHOTO_SCALES))} px with random flips, so its backgrounds are less "
            "varied: published MNIST-M numbers are a reference, not a like-for-like comparison. Fixed seed: the same "
            "images in every run"
        )
    index, part_words = _halves(name, base.y_train, seed, part)
    x_train, y_train = (base.x_train, base.y_train) if index is None else (base.x_train[index], base.y_train[index])
    steps[0] += part_words
    return Domain(name=name, kind="image", x_train=x_train, y_train=y_train, x_test=base.x_test,
                  y_test=base.y_test, class_names=base.class_names, description=tuple(steps),
                  warnings=base.warnings)


def loader_for(name: str) -> Callable[..., Domain]:
    """The registry loader ``(seed, part, data_dir=None, **options) -> Domain`` for spec name ``name``."""
    _source(name)

    def load(seed: int, part: int | None = None, data_dir: str | os.PathLike | None = None, **options) -> Domain:
        return load_torchvision(name, seed, part, data_dir=data_dir, **options)

    load.__name__ = f"load_{name}"
    load.__doc__ = (f"{SOURCES[name].summary}. Reads torchvision's files under the data directory and downloads "
                    "missing ones (progress: tlcore.download.download_progress); offline, raises "
                    "DatasetUnavailableError naming the files expected.")
    return load
