"""Data roots: the folders below which a *confined* caller may read data.

The command line reads whatever its user can read: that user owns the machine.
The app, opened by a whole class on one server, passes a :class:`DataRoots` to
the engine functions that read a path a user typed
(:func:`tlcore.data.folder.resolve_folder`, :func:`tlcore.data.sources.preview_folder`,
:func:`tlcore.data.load_domain`, :func:`tlcore.data.make_pair`,
:func:`tlcore.data.check_spec_access`). ``roots=None``, the default everywhere,
means no confinement.

Every path is resolved with :func:`os.path.realpath` (symbolic links and ``..``
followed) before it is compared with the roots, which are resolved the same way.
So ``/``, ``/etc``, ``folder:../../etc`` and a link inside a root that points
elsewhere are all refused with :class:`~tlcore.errors.ConfinementError`; a root
that is itself a link (``/data`` -> ``/mnt/disk1/data``) admits what lies below
its target. The folder scanner refuses a class or domain folder, or an image
file, that is a link leaving the roots (:mod:`tlcore.data.folder`).

:meth:`DataRoots.from_env` gives the app's roots: the data directory
(:func:`tlcore.paths.default_data_dir`) and each folder listed in
``$TRANSFER_LAB_DATA_ROOTS`` (separated by ``os.pathsep``: ``:`` on Linux and
macOS, ``;`` on Windows).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfinementError

ROOTS_ENV = "TRANSFER_LAB_DATA_ROOTS"


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


@dataclass(frozen=True)
class DataRoots:
    """Resolved folders (``paths``) below which reading is allowed. Build it with :meth:`of` or :meth:`from_env`."""

    paths: tuple[Path, ...]

    @classmethod
    def of(cls, *paths: str | os.PathLike) -> "DataRoots":
        """Roots at ``paths`` (resolved; duplicates dropped). At least one is needed."""
        resolved: list[Path] = []
        for path in paths:
            real = _real(path)
            if real not in resolved:
                resolved.append(real)
        if not resolved:
            raise ConfinementError("data roots need at least one folder")
        return cls(tuple(resolved))

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None) -> "DataRoots":
        """The data directory (``data_dir``, default :func:`tlcore.paths.default_data_dir`) and each
        folder of ``$TRANSFER_LAB_DATA_ROOTS``."""
        from ..paths import default_data_dir

        listed = [part.strip() for part in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if part.strip()]
        return cls.of(data_dir if data_dir is not None else default_data_dir(), *listed)

    def describe(self) -> str:
        """The roots as a comma-separated list, for messages."""
        return ", ".join(str(path) for path in self.paths)

    def contains_resolved(self, real: Path) -> bool:
        """Whether an already resolved path is a root or lies below one."""
        return any(real == root or real.is_relative_to(root) for root in self.paths)

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, resolved, is a root or lies below one."""
        return self.contains_resolved(_real(path))

    def check(self, path: str | os.PathLike, what: str = "") -> Path:
        """``path`` resolved, or :class:`~tlcore.errors.ConfinementError` when it leaves the roots.

        ``what`` says what the path is for the message (e.g. ``"folder:../etc"``)."""
        real = _real(path)
        if not self.contains_resolved(real):
            shown = f"{path}" if str(path) == str(real) else f"{path} (resolved: {real})"
            raise ConfinementError(f"{what + ': ' if what else ''}{shown} is outside the data folders this server "
                                   f"lets the app read: {self.describe()}. Put the data below one of them "
                                   f"(an administrator can add folders with {ROOTS_ENV})")
        return real
