"""The directory back end: where grants and revokes of active assignments are carried out.

Chosen by the PIM_DIRECTORY_BACKEND setting (a dotted path), like EMAIL_BACKEND. The default
does nothing; entra.backend.GraphBackend provisions Microsoft Entra ID.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string


class DirectoryError(Exception):
    """A directory call failed."""


class TransientDirectoryError(DirectoryError):
    """Worth retrying later (throttling, 5xx, timeouts, network)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDirectoryError(DirectoryError):
    """Retrying will not help (policy refused, bad request, missing object)."""


class DirectoryBackend:
    """Interface. Both calls must be idempotent: granting what exists or revoking what is gone
    counts as success. They return a small dict recorded on the operation (ids, status).

    A directory that applies changes asynchronously (Entra) also answers `in_force`: is the
    target (an active assignment, or an eligibility written back) in force there now, as the
    portal has it? The worker asks it after a grant, revoke or eligibility change was accepted,
    until the change shows (proof of effect), if it says so in `confirms_effect`."""

    confirms_effect = False

    def grant(self, assignment) -> dict:
        raise NotImplementedError

    def revoke(self, assignment) -> dict:
        raise NotImplementedError

    def eligibility(self, eligible, operation: str) -> dict:
        """Write an eligibility change back (operation: DirectoryOperation.Operation's
        eligible_*). Idempotent like grant and revoke. By default: nothing to write to."""
        return {"skipped": "this directory keeps no eligibilities"}

    def in_force(self, target) -> bool | None:
        """True if the directory has the target (an ActiveAssignment or an EligibleAssignment)
        in force now, False if not; None when this directory cannot tell (nothing to confirm).
        For a target that has not ended, "in force" means as the portal has it (an eligibility
        with the portal's end); for one that has ended, whether anything of it is left.
        May raise DirectoryError."""
        return None


class NullBackend(DirectoryBackend):
    """No directory: the portal's own records are the only place access lives."""

    def grant(self, assignment) -> dict:
        return {}

    def revoke(self, assignment) -> dict:
        return {}

    def eligibility(self, eligible, operation: str) -> dict:
        return {}


_running_operation: ContextVar = ContextVar("running_directory_operation", default=None)


@contextmanager
def directory_operation_running(operation) -> Iterator[None]:
    """Inside, running_directory_operation() is the outbox operation being carried out (a back
    end that names its requests, as ARM does, derives a stable name from it: a retried
    operation then sends the same request again, not a second one)."""
    token = _running_operation.set(operation)
    try:
        yield
    finally:
        _running_operation.reset(token)


def running_directory_operation():
    """The DirectoryOperation the outbox is carrying out in this context, or None."""
    return _running_operation.get()


@lru_cache(maxsize=1)
def _backend_class(path: str):
    return import_string(path)


def get_backend() -> DirectoryBackend:
    return _backend_class(settings.PIM_DIRECTORY_BACKEND)()


def in_directory(assignment) -> bool:
    """Does the directory hold this assignment or eligibility too? Entra directory roles, the
    roles of governed groups (PIM for Groups), and Azure roles at an Azure Resource Manager
    scope; the portal's own and custom roles, and Azure roles at /, live in the portal only."""
    from .models import Role  # this module is imported before the apps are ready

    kind = assignment.role.kind
    return kind in (Role.Kind.ENTRA, Role.Kind.GROUP) or (kind == Role.Kind.AZURE and assignment.scope != "/")
