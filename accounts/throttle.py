"""Brute-force protection (django-axes): wrong passwords and wrong codes count against the
account and, separately, the client address (common.client.client_address); at
AXES_FAILURE_LIMIT failures within AXES_COOLOFF_TIME either is locked until the cool-off ends,
the right password included.

The audit log must not become the attacker's to grow: per account, address and cool-off window
only the first failure is written as an event, and the one that locks (with the count); failures
refused during a lockout are counted by django-axes only."""

from datetime import datetime

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import caches
from django.db.models import Max, Q
from django.http import HttpRequest
from django.utils import timezone

from common.client import client_address

_CACHE = "refusals"


def attempt_username(request: HttpRequest | None, credentials: dict | None) -> str | None:
    """The account an attempt is for, as django-axes counts it: case and spaces do not make
    "Alice " another account."""
    username = (credentials or {}).get("username")
    if username is None and request is not None and request.method == "POST":
        username = request.POST.get("username")
    if username is None:
        return None
    return str(username).strip().lower()[:150] or None


def failure_is_audited(request: HttpRequest | None, username: str) -> tuple[bool, int]:
    """Whether this failed attempt gets an audit event, and how many failures the account or
    address has in the window (django-axes counted it before this is called)."""
    failures = int(getattr(request, "axes_failures_since_start", 0) or 0) if request else 0
    limit = settings.AXES_FAILURE_LIMIT
    if request is None or failures == 0:
        return True, failures  # not counted by axes (no request): record it
    if failures > limit:
        return False, failures  # refused during a lockout
    if failures == limit:
        return True, failures  # the failure that locks
    window = int(timezone.now().timestamp() // settings.AXES_COOLOFF_TIME.total_seconds())
    key = f"signin-failures:{window}:{username}:{client_address(request) or '-'}"
    cache = caches[_CACHE]
    try:
        cache.add(key, 0, timeout=int(settings.AXES_COOLOFF_TIME.total_seconds()) + 60)
        first = cache.incr(key) == 1
    except Exception:  # noqa: BLE001 - the counter's cache down: record the failure
        first = True
    return first, failures


def locked_until(request: HttpRequest, username: str | None) -> datetime | None:
    """When the lockout that covers this account or address ends, or None if none does."""
    address = client_address(request)
    match = Q(ip_address=address) if address else Q(pk__in=[])
    if username:
        match |= Q(username=username)
    last = AccessAttempt.objects.filter(match).aggregate(last=Max("attempt_time"))["last"]
    if last is None:
        return None
    until = last + settings.AXES_COOLOFF_TIME
    return until if until > timezone.now() else None


def code_attempt_allowed(request: HttpRequest, *, username: str) -> bool:
    """Whether a code may be checked for this account from this address (not locked out)."""
    return bool(AxesProxyHandler.is_allowed(request, {"username": username}))


def lockout_message(until: datetime | None) -> str:
    if until is None:
        return "Too many failed attempts: try again later."
    return f"Too many failed attempts: try again at {until:%H:%M} UTC ({until:%Y-%m-%d})."
