"""Your own images: ``folder:PATH`` reads one domain laid out as ``PATH/<class>/<image>``.

Layouts
-------
* One domain: ``PATH/<class>/<image>`` (torchvision's ``ImageFolder`` layout;
  images may sit in sub-folders of a class folder). A wrapper folder with no
  images of its own and a single sub-folder (``office31/amazon/images/...``, or
  the top folder of an unpacked zip) is stepped through.
* Several domains: ``ROOT/<domain>/<class>/<image>``, as Office-31,
  Office-Home and PACS ship. A spec names **one** domain by its folder:
  ``folder:/data/office31/amazon``. Giving ``ROOT`` itself is refused with a
  message that lists its domains and the spec to write for each;
  :func:`inspect_folder` lists them for the app.

Where PATH points: an absolute path, or one starting with ``~``, ``./`` or
``../``, is a path on this machine; any other relative path is looked up under
``<data dir>/folders/``, where uploaded zips are unpacked
(:func:`tlcore.data.archive.extract_image_zip`), so ``folder:office31/amazon``
is portable between machines.

Confinement
-----------
The functions that read a folder take ``roots`` (a
:class:`~tlcore.data.roots.DataRoots`; ``None``, the default, reads anything).
With roots, the folder a spec names must resolve below one of them, and a class
or domain folder or an image file inside it that is a symbolic link leaving the
roots is refused (:class:`~tlcore.errors.ConfinementError`) before anything
below it is listed or read. The app passes its roots; the CLI passes none.

Loading
-------
Every image is converted to RGB, resized so its shorter side is ``S`` pixels
(bilinear) and centre-cropped to ``S``×``S`` (``S`` = 224 unless the spec
starts with ``resize=S``), and kept as uint8. A file that cannot be decoded is
skipped and counted in the domain's description; loading never stops for one.
A fixed stratified 70/30 split (the same in every run) gives the train and test
sets; a leading ``limit=N`` keeps at most N images per class of each split
before anything is decoded.

Resident or streamed
--------------------
Before decoding, the resident size (train and test, uint8) is compared with
the limit of :mod:`tlcore.data.limits`, and ``data_mode`` decides:
``"resident"`` decodes everything into one tensor per split, or refuses above
the limit; ``"stream"`` never decodes up front: ``x_train`` and ``x_test`` are
:class:`~tlcore.data.lazy.LazyImages` over the files, decoded (the same way,
by :func:`decode_image`) when a batch is read; ``"auto"`` streams exactly when
the resident size is above the limit. A streamed folder cannot know which
files fail to decode without decoding them, so it checks each file when it is
listed: PIL must identify it and, for PNG and other formats with checksums,
``Image.verify`` must pass; the files that fail are skipped and counted as a
resident folder's are. A file that passes that check but fails when its pixels
are read (a truncated JPEG) stops the run with its path.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfinementError, DatasetUnavailableError, SpecError
from .builtin import stratified_split
from .domain import Domain
from .lazy import LazyImages
from .roots import DataRoots
from .limits import STREAM_ADVICE, check_data_mode, check_resident_size, exceeds_limit, format_bytes, image_bytes, \
    max_resident_bytes
from .shifts import derive_generator, format_value

# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
FOLDERS_SUBDIR = "folders"
FOLDER_DEFAULT_SIZE = 224
FOLDER_TEST_FRACTION = 0.3
FOLDER_SPLIT_SEED = 20240602  # fixed: the same train/test split in every run
IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
DECODE_THREADS = 8
DECODED_CACHE_SIZE = 4
LISTED_SKIPS = 5


def is_image_name(name: str) -> bool:
    """Whether ``name`` has one of torchvision's image extensions (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


def folders_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data dir>/folders``: where relative ``folder:`` paths and unpacked uploads live."""
    from .torchvision_data import resolve_data_dir

    return resolve_data_dir(data_dir) / FOLDERS_SUBDIR


def resolve_folder(argument: str, data_dir: str | os.PathLike | None = None,
                   roots: DataRoots | None = None) -> Path:
    """The directory a ``folder:`` argument names (see the module docstring).

    With ``roots``, a path that resolves outside them is refused with
    :class:`~tlcore.errors.ConfinementError` (whether it exists or not)."""
    text = (argument or "").strip()
    if not text:
        raise SpecError("folder needs a path, written folder:PATH")
    on_machine = text.startswith("~") or os.path.isabs(text) or text in (".", "..") \
        or text.startswith(("./", "../", ".\\", "..\\"))
    path = Path(text).expanduser() if on_machine else folders_dir(data_dir) / text
    if roots is not None:
        roots.check(path, f"folder:{text}")
    if not path.is_dir():
        where = "" if on_machine else \
            f" (relative paths are looked up under {folders_dir(data_dir)}; start with ./ for the current directory)"
        raise DatasetUnavailableError(f"folder:{text}: {path} is not a directory{where}")
    return path.resolve()


def _check_link(path: Path, roots: DataRoots | None) -> None:
    """Refuse ``path`` when it is a symbolic link that leaves ``roots`` (nothing to check without roots)."""
    if roots is not None and path.is_symlink() and not roots.contains(path):
        raise ConfinementError(f"{path} is a link to {os.path.realpath(path)}, outside the data folders this server "
                               f"lets the app read ({roots.describe()}); remove the link or copy the files below "
                               "a data folder")


def _subdirs(path: Path, roots: DataRoots | None = None) -> list[Path]:
    try:
        children = sorted((entry for entry in path.iterdir() if entry.is_dir() and not _ignored(entry.name)),
                          key=lambda entry: entry.name)
    except OSError as exc:
        raise DatasetUnavailableError(f"cannot list {path}: {exc}") from None
    for child in children:
        _check_link(child, roots)
    return children


def _has_direct_images(path: Path) -> bool:
    try:
        return any(entry.is_file() and is_image_name(entry.name) and not _ignored(entry.name)
                   for entry in path.iterdir())
    except OSError:
        return False


def _unwrap(path: Path, roots: DataRoots | None = None) -> Path:
    """Step through wrapper folders: no images here, one sub-folder, which has no images of its own."""
    for _ in range(8):
        children = _subdirs(path, roots)
        if _has_direct_images(path) or len(children) != 1 or _has_direct_images(children[0]):
            return path
        path = children[0]
    return path


def _images_under(path: Path, roots: DataRoots | None = None) -> tuple[list[Path], int]:
    """Image files anywhere under ``path`` (sorted; hidden entries and symlinked folders skipped),
    and the number of other files seen. With ``roots``, an image file that is a link leaving them is
    refused (``path`` itself was checked by the caller; the walk does not enter linked folders)."""
    images, others = [], 0
    for directory, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not _ignored(name))
        for name in sorted(filenames):
            if _ignored(name):
                continue
            if is_image_name(name):
                images.append(Path(directory) / name)
                _check_link(images[-1], roots)
            else:
                others += 1
    return images, others


@dataclass(frozen=True)
class FolderInfo:
    """What a folder holds.

    ``kind`` is ``"domain"`` (``root/<class>/<image>``; ``classes`` and
    ``counts`` filled) or ``"domains"`` (``root/<domain>/<class>/<image>``;
    ``domains`` lists each domain's folder, relative to ``root``'s parent
    when given through :func:`inspect_folder`, and ``domain_paths`` the paths).
    """

    path: Path
    root: Path
    kind: str
    classes: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
    domain_paths: tuple[Path, ...] = ()
    other_files: int = 0


def inspect_folder(path: str | os.PathLike, roots: DataRoots | None = None) -> FolderInfo:
    """Classify ``path`` as one domain or a root of several (see the module docstring).

    Raises :class:`~tlcore.errors.SpecError` when it holds no class folders
    with images (e.g. images with no class sub-folders, or an empty folder), and
    with ``roots`` :class:`~tlcore.errors.ConfinementError` for a link inside
    it that leaves them.
    """
    path = Path(path)
    if roots is not None:
        roots.check(path)
    root = _unwrap(path, roots)
    children = _subdirs(root, roots)
    if any(_has_direct_images(child) for child in children):
        classes, counts, others = [], [], 0
        for child in children:
            images, other = _images_under(child, roots)
            others += other
            if images:
                classes.append(child.name)
                counts.append(len(images))
        return FolderInfo(path, root, "domain", tuple(classes), tuple(counts), other_files=others)
    domains = []
    for child in children:
        inner = _unwrap(child, roots)
        if any(_has_direct_images(grandchild) for grandchild in _subdirs(inner, roots)):
            domains.append(child)
    if domains:
        return FolderInfo(path, root, "domains", domains=tuple(d.name for d in domains),
                          domain_paths=tuple(domains))
    if _has_direct_images(root):
        raise SpecError(f"{root} holds images but no class folders; put each class's images in its own "
                        "sub-folder: ROOT/<class>/<image>")
    raise SpecError(f"{path} holds no class folders with images; expected ROOT/<class>/<image> "
                    "or ROOT/<domain>/<class>/<image>")


@dataclass(frozen=True)
class FolderLayout:
    """One domain's files: ``files[i]`` has label ``labels[i]`` (an index into ``classes``)."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: torch.Tensor
    other_files: int


def scan_domain(path: Path, argument: str = "", roots: DataRoots | None = None) -> FolderLayout:
    """The image files and labels of one domain folder; a root of several domains is refused
    (and with ``roots``, a link leaving them)."""
    info = inspect_folder(path, roots)
    if info.kind == "domains":
        written = argument.rstrip("/\\") or str(path)
        choices = ", ".join(f"folder:{written}/{name}" for name in info.domains)
        raise SpecError(f"folder:{written} holds {len(info.domains)} domains ({', '.join(info.domains)}), each with "
                        f"its own class folders; a spec names one domain: {choices}")
    files, labels, others = [], [], 0
    for label, name in enumerate(info.classes):
        images, other = _images_under(info.root / name, roots)
        files += images
        labels += [label] * len(images)
        others += other
    return FolderLayout(info.root, info.classes, tuple(files), torch.tensor(labels, dtype=torch.int64), others)


# --------------------------------------------------------------------------- decoding
def decode_image(path: Path, size: int) -> np.ndarray | None:
    """RGB uint8 (3, size, size): shorter side resized to ``size`` (bilinear), centre-cropped.

    Returns None for a file that cannot be decoded (truncated, not an image,
    a decompression bomb, ...): callers count it and go on.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size
            image = image.convert("RGB")
            width, height = image.size
            scale = size / min(width, height)
            new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
            image = image.resize(new_size, Image.Resampling.BILINEAR)
            left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
            image = image.crop((left, top, left + size, top + size))
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
    except Exception:  # noqa: BLE001 - any undecodable file is skipped and counted, never fatal
        return None


def decode_images(files: list[Path] | tuple[Path, ...], size: int) -> tuple[torch.Tensor, list[int]]:
    """Decode ``files`` in threads (PIL releases the GIL while decoding and resizing).

    Returns uint8 (N_ok, 3, size, size) and the indices of the files that
    could not be read.
    """
    out = torch.empty((len(files), 3, size, size), dtype=torch.uint8)
    failed = []
    workers = max(1, min(DECODE_THREADS, os.cpu_count() or 1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, array in enumerate(pool.map(lambda f: decode_image(f, size), files)):
            if array is None:
                failed.append(index)
            else:
                out[index] = torch.from_numpy(array)
    if failed:
        keep = torch.ones(len(files), dtype=torch.bool)
        keep[failed] = False
        out = out[keep]
    return out, failed


_decoded: OrderedDict[tuple, tuple[torch.Tensor, list[int]]] = OrderedDict()
_decoded_lock = threading.Lock()


def _decode_cached(files: list[Path], size: int) -> tuple[torch.Tensor, list[int]]:
    """:func:`decode_images`, remembered per (files, their sizes and times, size) within the process."""
    signature = []
    for path in files:
        try:
            stat = path.stat()
            signature.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            signature.append((str(path), -1, -1))
    key = (size, tuple(signature))
    with _decoded_lock:
        if key in _decoded:
            _decoded.move_to_end(key)
            return _decoded[key]
    result = decode_images(files, size)
    with _decoded_lock:
        _decoded[key] = result
        while len(_decoded) > DECODED_CACHE_SIZE:
            _decoded.popitem(last=False)
    return result


def _limit(index: torch.Tensor, labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    kept = []
    for label in torch.unique(labels[index]).tolist():
        members = index[labels[index] == label]
        if len(members) > per_class:
            members = members[torch.randperm(len(members), generator=generator)[:per_class]]
        kept.append(members)
    return torch.sort(torch.cat(kept)).values if kept else index


def _whole(name: str, value: float | None) -> int | None:
    if value is None:
        return None
    if not float(value).is_integer():
        raise SpecError(f"{name}={format_value(value)}: {name} must be a whole number")
    return int(value)


def readable_header(path: Path) -> bool:
    """Whether PIL identifies ``path`` as an image and its checksums (PNG) pass, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - any unreadable file is skipped and counted, never fatal
        return False


def _check_headers(files: list[Path]) -> list[int]:
    """Indices of ``files`` that :func:`readable_header` rejects (checked in threads)."""
    workers = max(1, min(DECODE_THREADS, os.cpu_count() or 1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [i for i, ok in enumerate(pool.map(readable_header, files)) if not ok]


def load_folder(seed: int, part: int | None = None, data_dir: str | os.PathLike | None = None,
                argument: str | None = None, resize: float | None = None, limit: float | None = None,
                data_mode: str = "resident", roots: DataRoots | None = None) -> Domain:
    """Load one image-folder domain (registry loader of ``folder:PATH``; see the module docstring).

    ``resize`` and ``limit`` are the values of a leading ``resize=`` /
    ``limit=`` in the spec, applied while reading. ``data_mode`` (``"resident"``,
    ``"auto"`` or ``"stream"``) says whether the images are decoded into memory
    now or streamed from disk when read. ``roots`` confines what may be read
    (see the module docstring).
    """
    check_data_mode(data_mode)
    if part not in (None, 0, 1):
        raise SpecError(f"part must be None, 0 or 1, got {part!r}")
    size = _whole("resize", resize) or FOLDER_DEFAULT_SIZE
    per_class = _whole("limit", limit)
    path = resolve_folder(argument or "", data_dir, roots)
    layout = scan_domain(path, argument or "", roots)
    labels = layout.labels
    train_index, test_index = stratified_split(labels, 1.0 - FOLDER_TEST_FRACTION,
                                               torch.Generator().manual_seed(FOLDER_SPLIT_SEED))
    steps = [f"image folder {layout.root}: {len(layout.classes)} classes, {len(layout.files)} image files; "
             f"fixed stratified {round(100 * (1 - FOLDER_TEST_FRACTION))}/{round(100 * FOLDER_TEST_FRACTION)} "
             f"train/test split ({len(train_index)} / {len(test_index)})"]
    if layout.other_files:
        steps[0] += f"; {layout.other_files} non-image file(s) ignored"
    if part is not None:
        halves = stratified_split(labels[train_index], 0.5, derive_generator("folder", str(layout.root), seed, "halves"))
        train_index = train_index[halves[part]]
        steps[0] += f"; training half {part} of 2 (stratified, disjoint from the other half)"
    if per_class is not None:
        generator = derive_generator(seed, "folder", "limit")
        before = (len(train_index), len(test_index))
        train_index = _limit(train_index, labels, per_class, generator)
        test_index = _limit(test_index, labels, per_class, generator)
        steps.append(f"limited to at most {per_class} images per class in each split before decoding (seeded): "
                     f"train {len(train_index)}/{before[0]}, test {len(test_index)}/{before[1]} kept")
    count = len(train_index) + len(test_index)
    stream = data_mode == "stream" or (data_mode == "auto" and exceeds_limit(count, (3, size, size)))
    if not stream:
        check_resident_size(f"folder:{argument}", count, (3, size, size),
                            advice=f"start the spec with them, e.g. folder:{argument}:resize=112 or "
                                   f"folder:{argument}:limit=100; ", stream_advice=STREAM_ADVICE)

    decoded, failures = {}, []
    for split, index in (("train", train_index), ("test", test_index)):
        files = [layout.files[i] for i in index.tolist()]
        if stream:
            failed = _check_headers(files)
            keep = torch.ones(len(index), dtype=torch.bool)
            keep[failed] = False
            images = LazyImages.from_files([f for f, k in zip(files, keep.tolist()) if k], size)
        else:
            images, failed = _decode_cached(files, size)
            keep = torch.ones(len(index), dtype=torch.bool)
            keep[failed] = False
        decoded[split] = (images, labels[index][keep])
        failures += [files[i] for i in failed]
    steps.append(f"each image converted to RGB, resized so its shorter side is {size} px (bilinear) and centre-cropped "
                 f"to {size}×{size}; uint8 (0–255, scaled to [0, 1] per batch)")
    if stream:
        needed = format_bytes(image_bytes(count, (3, size, size)))
        why = ("data_mode=stream" if data_mode == "stream" else
               f"data_mode=auto: {needed} as uint8 is above the resident limit of {format_bytes(max_resident_bytes())}")
        steps.append(f"streamed from disk ({why}): images are decoded when a batch is read, by the training's "
                     "DataLoader worker processes, never held in memory all at once")
    if failures:
        listed = ", ".join(str(path.relative_to(layout.root)) for path in failures[:LISTED_SKIPS])
        more = f" and {len(failures) - LISTED_SKIPS} more" if len(failures) > LISTED_SKIPS else ""
        steps.append(f"{len(failures)} unreadable image(s) skipped: {listed}{more}")
    empty = [name for label, name in enumerate(layout.classes)
             if not (decoded["train"][1] == label).any() and not (decoded["test"][1] == label).any()]
    if empty:
        steps.append(f"no readable image in class(es): {', '.join(empty)}")
    if len(decoded["train"][1]) == 0:
        raise DatasetUnavailableError(f"folder:{argument}: none of the {len(failures)} selected images could be read")
    return Domain(
        name=f"folder:{argument}", kind="image",
        x_train=decoded["train"][0], y_train=decoded["train"][1],
        x_test=decoded["test"][0], y_test=decoded["test"][1],
        class_names=layout.classes, description=tuple(steps),
    )


def clear_cache() -> None:
    """Forget decoded folders held in memory."""
    with _decoded_lock:
        _decoded.clear()
