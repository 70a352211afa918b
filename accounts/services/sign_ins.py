"""Sign-in activity from the directory (Entra's signInActivity), beside the portal's own."""

from collections.abc import Mapping
from datetime import datetime

from ..models import User

BATCH = 1000
FIELDS = ("directory_sign_in_at", "directory_non_interactive_sign_in_at")


def users_directory_sign_ins_record(
    *, activity: Mapping[int, tuple[datetime | None, datetime | None]]
) -> int:
    """Record each user's last interactive and non-interactive directory sign-in (by user pk);
    how many users changed. A bulk update of the changed ones only.

    Not audited: like the portal's own last sign-in, it is an observation, not a change of
    access (the sync run records the counts)."""
    changed: list[User] = []
    pks = list(activity)
    for start in range(0, len(pks), BATCH):
        for user in User.objects.filter(pk__in=pks[start : start + BATCH]).only("pk", *FIELDS):
            if (user.directory_sign_in_at, user.directory_non_interactive_sign_in_at) != activity[user.pk]:
                user.directory_sign_in_at, user.directory_non_interactive_sign_in_at = activity[user.pk]
                changed.append(user)
    User.objects.bulk_update(changed, FIELDS, batch_size=BATCH)
    return len(changed)
