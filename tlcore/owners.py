"""Ownership without accounts: who may stop or delete which run or job.

Every browser session of the app gets an anonymous owner id (:func:`new_owner_id`, kept in
the page's URL so a refresh keeps it); the runs and jobs it starts record it
(``RunRecord.owner``). Everyone may *read* every run, since sharing is the point; only the
owner may stop or delete it, and so may a teacher: whoever enters the secret token that the
server's environment sets in :data:`TEACHER_TOKEN_ENV` (compared in constant time).

A run without an owner (started by the command line, or stored before owners existed) belongs
to whoever runs the server: on a server with a teacher token (a classroom) only a teacher may
stop or delete it from the app; without one (a lab on one's own machine) anyone may.

An :class:`Actor` is who asks. The engine's entry points that change a run or a job take
one (``actor=None`` is the command line, whose user owns the machine and may do anything),
so a page cannot get round the rule by drawing a button it should not.
"""
from __future__ import annotations

import hmac
import os
import re
import uuid
from dataclasses import dataclass

from .errors import PermissionDeniedError, TransferLabError
from .runs import RunStore

#: The environment variable holding the teacher token; unset or empty: no teacher mode.
TEACHER_TOKEN_ENV = "TRANSFER_LAB_TEACHER_TOKEN"

_OWNER_ID = re.compile(r"^[0-9a-f]{12}$")


def new_owner_id() -> str:
    """A fresh anonymous owner id (12 random hex digits)."""
    return uuid.uuid4().hex[:12]


def valid_owner_id(text: str | None) -> bool:
    """Whether ``text`` has the form of an owner id (what the app accepts from a URL)."""
    return bool(text) and bool(_OWNER_ID.match(text))


def teacher_mode_available() -> bool:
    """Whether this server has a teacher token configured."""
    return bool(os.environ.get(TEACHER_TOKEN_ENV))


def is_teacher_token(token: str | None) -> bool:
    """Whether ``token`` is this server's teacher token (constant-time comparison; False when
    no token is configured, so an empty entry never unlocks anything)."""
    expected = os.environ.get(TEACHER_TOKEN_ENV, "")
    if not expected or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class Actor:
    """Who asks to change a run or job: an owner id, and whether they are a teacher."""

    owner: str | None
    teacher: bool = False

    def may_change(self, owner: str | None) -> bool:
        """Whether this actor may stop or delete something owned by ``owner`` (None: the
        command line's, see the module's docstring)."""
        if self.teacher:
            return True
        if owner is None:
            return not teacher_mode_available()
        return owner == self.owner

    def check(self, owner: str | None, what: str, action: str) -> None:
        """Raise :class:`PermissionDeniedError` unless this actor may ``action`` ``what``."""
        if not self.may_change(owner):
            whose = "the command line" if owner is None else "another user"
            raise PermissionDeniedError(
                f"you cannot {action} {what}: it was started by {whose}. Only its owner or a teacher "
                f"may {action} it (everyone may read it).")


def check_actor(actor: Actor | None, owner: str | None, what: str, action: str) -> None:
    """:meth:`Actor.check`, where ``actor`` None (the command line) may do anything."""
    if actor is not None:
        actor.check(owner, what, action)


def delete_run(store: RunStore, run_id: str, actor: Actor | None = None) -> None:
    """Delete a run (its events and checkpoint) if ``actor`` may; a queued or running run must be
    stopped first."""
    record = store.get_run(run_id)
    check_actor(actor, record.owner, f"run {run_id}", "delete")
    if record.status in ("queued", "running"):
        raise TransferLabError(f"run {run_id} is {record.status}: stop it before deleting it")
    store.delete_run(run_id)
