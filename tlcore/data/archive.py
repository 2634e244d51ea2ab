"""Safe extraction of an uploaded zip of images into ``<data dir>/folders/<name>``.

:func:`extract_image_zip` is what the app calls with an uploaded file. It reads
the archive's directory first and refuses the whole archive (nothing is
written) when:

* the zip itself is larger than ``max_archive_bytes`` (checked first, from the
  file's size, before the archive is even opened);
* an entry's path is absolute (``/etc/x``, ``C:\\x``) or climbs out with
  ``..`` (zip-slip), or holds a NUL byte;
* it has more than ``max_files`` entries, declares more than
  ``max_total_bytes`` uncompressed, has a single file above
  ``max_file_bytes``, or compresses suspiciously well (uncompressed /
  compressed above ``max_ratio`` for the archive, or for one entry of more
  than 1 MiB): the signs of a zip bomb.

Entries that are not images (by extension), symbolic links, and macOS/hidden
metadata are skipped and counted. Images are streamed out with a running byte
count (so a lying header cannot write more than the limit) into a temporary
folder that is renamed into place only when everything succeeded, and the
result must have a usable layout (:func:`tlcore.data.folder.inspect_folder`).
Images that turn out to be undecodable are skipped later, when a domain is
loaded.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import ArchiveError, SpecError, TransferLabError
from .folder import folders_dir, inspect_folder, is_image_name

MIB = 1024 * 1024
RATIO_CHECK_MIN_BYTES = 1 * MIB  # small entries may compress well legitimately
LISTED = 5


@dataclass(frozen=True)
class ArchiveLimits:
    """Refusal thresholds for :func:`extract_image_zip` (``max_archive_bytes`` None: any size of zip)."""

    max_total_bytes: int = 4 * 1024 * MIB
    max_file_bytes: int = 64 * MIB
    max_files: int = 200_000
    max_ratio: float = 100.0
    max_archive_bytes: int | None = None


@dataclass(frozen=True)
class ExtractedArchive:
    """Where the images went and what was skipped.

    ``specs`` are ready-made dataset specs: one ``folder:NAME`` for a single
    domain, or one per domain (``folder:NAME/amazon``, ...).
    """

    root: Path
    name: str
    images: int
    bytes_written: int
    skipped: int
    skipped_examples: tuple[str, ...]
    kind: str
    classes: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    specs: tuple[str, ...] = field(default_factory=tuple)


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path an entry may be written to; :class:`ArchiveError` for absolute or climbing paths."""
    if "\x00" in name:
        raise ArchiveError(f"zip entry {name!r} has a NUL byte in its name; refusing the archive")
    normal = name.replace("\\", "/")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        raise ArchiveError(f"zip entry {name!r} has an absolute path; refusing the archive (zip-slip)")
    parts = [part for part in normal.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"zip entry {name!r} climbs out of the target folder with '..'; refusing the archive "
                           "(zip-slip)")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _skip_reason(info: zipfile.ZipInfo, path: PurePosixPath) -> str | None:
    if info.is_dir():
        return "directory"
    if _is_symlink(info):
        return "symbolic link"
    if any(part.startswith(".") or part == "__MACOSX" for part in path.parts):
        return "hidden or metadata file"
    if not is_image_name(path.name):
        return "not an image"
    return None


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return name[:64] or "upload"


def _unique_dir(parent: Path, name: str) -> tuple[Path, str]:
    candidate, number = name, 1
    while (parent / candidate).exists():
        number += 1
        candidate = f"{name}-{number}"
    return parent / candidate, candidate


def source_size(source: str | os.PathLike | BinaryIO) -> int | None:
    """The size in bytes of a zip given as a path or a seekable file object (None when unknown).

    A file object's own ``size`` (Streamlit's ``UploadedFile``) is used when it has
    one; otherwise it is measured by seeking to its end and back."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.stat(source).st_size
        except OSError:
            return None
    size = getattr(source, "size", None)
    if isinstance(size, int):
        return size
    try:
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
        return end
    except (AttributeError, OSError, ValueError):
        return None


def check_archive_size(source: str | os.PathLike | BinaryIO, limits: ArchiveLimits) -> None:
    """:class:`ArchiveError` when the zip is larger than ``limits.max_archive_bytes`` (before it is opened)."""
    size = source_size(source)
    if limits.max_archive_bytes is not None and size is not None and size > limits.max_archive_bytes:
        raise ArchiveError(f"the zip is {size / MIB:.1f} MiB, above the upload limit of "
                           f"{limits.max_archive_bytes / MIB:.0f} MiB; nothing was written")


def check_archive(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every entry (paths and sizes) and return the image entries to extract."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise ArchiveError(f"the archive has {len(infos)} entries, above the limit of {limits.max_files}")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if total > limits.max_total_bytes:
        raise ArchiveError(f"the archive would unpack to {total / MIB:.0f} MiB, above the limit of "
                           f"{limits.max_total_bytes / MIB:.0f} MiB")
    if total > RATIO_CHECK_MIN_BYTES and total / max(packed, 1) > limits.max_ratio:
        raise ArchiveError(f"the archive unpacks {total / max(packed, 1):.0f}× larger than it is "
                           f"({packed} → {total} bytes), above the ratio limit of {limits.max_ratio:.0f}: "
                           "this looks like a zip bomb; refusing it")
    wanted = []
    for info in infos:
        path = safe_member_path(info.filename)
        if info.file_size > limits.max_file_bytes:
            raise ArchiveError(f"zip entry {info.filename!r} unpacks to {info.file_size / MIB:.0f} MiB, above the "
                               f"per-file limit of {limits.max_file_bytes / MIB:.0f} MiB")
        if info.file_size > RATIO_CHECK_MIN_BYTES and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
            raise ArchiveError(f"zip entry {info.filename!r} unpacks {info.file_size / max(info.compress_size, 1):.0f}× "
                               f"larger than it is stored, above the ratio limit of {limits.max_ratio:.0f}: this "
                               "looks like a zip bomb; refusing the archive")
        if _skip_reason(info, path) is None:
            wanted.append((info, path))
    return wanted


def extract_image_zip(source: str | os.PathLike | BinaryIO, name: str | None = None,
                      data_dir: str | os.PathLike | None = None, limits: ArchiveLimits = ArchiveLimits(),
                      replace: bool = False) -> ExtractedArchive:
    """Unpack the images of a zip into ``<data dir>/folders/<name>`` and describe the result.

    Parameters
    ----------
    source: a path, or a binary file object (e.g. the app's uploaded file).
    name: the folder name (made safe: letters, digits, ``._-``); defaults to the
        zip's file name, or ``upload``. An existing folder of that name is kept
        and ``-2``, ``-3``, ... appended, unless ``replace`` is true.

    Raises :class:`~tlcore.errors.ArchiveError` for an unsafe or unusable
    archive; then nothing is left behind.
    """
    if name is None:
        source_name = getattr(source, "name", None) if not isinstance(source, (str, os.PathLike)) else source
        name = Path(str(source_name)).stem if source_name else "upload"
    name = _safe_name(name)
    parent = folders_dir(data_dir)
    check_archive_size(source, limits)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}") from None
    with archive:
        wanted = check_archive(archive, limits)
        chosen = {id(info) for info, _ in wanted}
        skipped = [info.filename for info in archive.infolist() if not info.is_dir() and id(info) not in chosen]
        if not wanted:
            raise ArchiveError(f"the archive holds no image files ({len(skipped)} other file(s) skipped, e.g. "
                               f"{', '.join(skipped[:LISTED]) or 'none'}); images need one of the extensions "
                               ".jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp")
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".extract-{uuid.uuid4().hex}"
        staging.mkdir()
        written = 0
        try:
            base = staging.resolve()
            for info, path in wanted:
                target = (staging / Path(*path.parts)).resolve()
                if base not in target.parents:  # defence in depth: safe_member_path already refused these
                    raise ArchiveError(f"zip entry {info.filename!r} would be written outside the target folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as entry, open(target, "wb") as out:
                    while chunk := entry.read(MIB):
                        written += len(chunk)
                        if written > limits.max_total_bytes:
                            raise ArchiveError(f"the archive unpacked past {limits.max_total_bytes / MIB:.0f} MiB "
                                               "although its directory declared less; refusing it")
                        out.write(chunk)
            try:
                inspect_folder(staging)
            except SpecError:
                raise ArchiveError("the archive's images are not in class folders: expected "
                                   "<class>/<image> or <domain>/<class>/<image> inside the zip") from None
            destination, final_name = (parent / name, name) if replace else _unique_dir(parent, name)
            if replace and destination.exists():
                shutil.rmtree(destination)
            os.replace(staging, destination)
        except TransferLabError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # CRC errors, encrypted entries, disk full
            shutil.rmtree(staging, ignore_errors=True)
            raise ArchiveError(f"the archive could not be unpacked: {exc}") from None
    layout = inspect_folder(destination)
    offset = layout.root.relative_to(destination)
    if layout.kind == "domain":
        prefix = PurePosixPath(final_name, *offset.parts)
        specs = (f"folder:{prefix}",)
    else:
        specs = tuple(f"folder:{PurePosixPath(final_name, *p.relative_to(destination).parts)}"
                      for p in layout.domain_paths)
    return ExtractedArchive(root=destination, name=final_name, images=len(wanted), bytes_written=written,
                            skipped=len(skipped), skipped_examples=tuple(skipped[:LISTED]), kind=layout.kind,
                            classes=layout.classes, domains=layout.domains, specs=specs)
