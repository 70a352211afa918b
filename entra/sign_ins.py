"""Importing sign-in activity: each linked user's last interactive and non-interactive
sign-in as Entra saw them (Graph `signInActivity`), so access reviews and the stale-account
alert see people who work in Microsoft 365 but rarely open the portal.

Needs the application permission AuditLog.Read.All and Entra ID P1 (README "Entra set-up");
off unless ENTRA_SIGN_IN_ACTIVITY. Graph caps the page at 500 users when signInActivity is
selected.
"""

from datetime import datetime

from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.services import users_directory_sign_ins_record

from .client import GraphClient
from .sync import Tally

SELECT = "id,signInActivity"
PAGE_SIZE = "500"  # the most Graph allows with signInActivity selected
KIND = "sign_in_activity"


def import_sign_in_activity(graph: GraphClient, tally: Tally) -> None:
    """Read every page first (a failed page raises before anything is written), then record
    the linked users' activity in batches; users not in the portal are skipped."""
    linked = dict(User.objects.exclude(external_id="").values_list("external_id", "pk"))
    activity: dict[int, tuple[datetime | None, datetime | None]] = {}
    for item in graph.all("users", params={"$select": SELECT, "$top": PAGE_SIZE}):
        pk = linked.get(str(item.get("id") or ""))
        if pk is None:
            continue
        sign_ins = item.get("signInActivity") or {}
        activity[pk] = (
            _moment(sign_ins.get("lastSignInDateTime")),
            _moment(sign_ins.get("lastNonInteractiveSignInDateTime")),
        )
    changed = users_directory_sign_ins_record(activity=activity)
    tally.counts[KIND]["updated"] += changed
    tally.counts[KIND]["unchanged"] += len(activity) - changed


def _moment(value) -> datetime | None:
    """An aware time, or None for a missing, unreadable or naive one (never a guess)."""
    try:
        moment = parse_datetime(str(value)) if value else None
    except ValueError:  # well formed but impossible ("2026-02-30")
        return None
    if moment is None or moment.tzinfo is None or moment.year < 2000:  # Graph's "never": 0001-01-01
        return None
    return moment
