"""Request ids, the request log and metrics, the operators' probes, and security headers."""

import logging
import re
import time
import uuid
import zoneinfo

from django.conf import settings
from django.http import HttpResponseNotAllowed
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from audit import context
from common.client import client_address, is_trusted_proxy

# The id a trusted proxy may pass on: 8 to 64 letters, digits and hyphens (a UUID, with or
# without its hyphens, fits). Matched in full: no dots, spaces or line breaks reach the logs.
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{8,64}")
_MAX_USER_AGENT = 400


class RequestIdMiddleware:
    """Give every request an id, expose it in X-Request-ID and to audit events and logs.

    The id is the client's X-Request-ID only when the request comes straight from one of
    PIM_TRUSTED_PROXIES (a load balancer that sets or overwrites the header) and the id has the
    strict format above; otherwise a fresh one. A client can never choose the id that its
    audit events carry.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = _forwarded_request_id(request) or uuid.uuid4().hex
        request.request_id = request_id
        token = context.bind(
            context.RequestContext(
                request_id=request_id,
                ip=client_address(request),
                user_agent=request.headers.get("User-Agent", "")[:_MAX_USER_AGENT],
            )
        )
        try:
            response = self.get_response(request)
        finally:
            # Refusals audited while the view's transaction was open are written now that it is
            # over, committed or rolled back (audit.refusals), still with this request's id.
            # Imported here: logging loads this module (RequestIdLogFilter) before the apps.
            from audit.refusals import audit_refusals_flush

            audit_refusals_flush()
            context.reset(token)
        response["X-Request-ID"] = request_id
        return response


def _forwarded_request_id(request) -> str | None:
    incoming = request.headers.get("X-Request-ID", "")
    if not incoming or not _REQUEST_ID_PATTERN.fullmatch(incoming):
        return None
    if not is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
        return None
    return incoming


request_logger = logging.getLogger("pim_portal.requests")


class RequestLogMiddleware:
    """One log line and the request metrics per request: method, path (never the query string:
    an approval link's token travels there), status, duration, user id. The request id comes
    from the log filter. Successful probes are logged at DEBUG only (they come every few seconds).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.monotonic()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            seconds = time.monotonic() - start
            match = getattr(request, "resolver_match", None)
            probe = request.path in _PROBE_PATHS
            view = _PROBE_PATHS.get(request.path) or (match.view_name if match else "unmatched")
            from pim_portal.metrics import request_observe  # after the apps (logging loads us first)

            request_observe(method=_method(request), view=view, status=status, seconds=seconds)
            user_id = _user_id(request)
            duration_ms = round(seconds * 1000, 1)
            level = logging.DEBUG if probe and status < 400 else logging.INFO
            request_logger.log(
                level,
                "%s %s %s %sms user=%s",
                _method(request),
                request.path,
                status,
                duration_ms,
                user_id if user_id is not None else "-",
                extra={
                    "method": _method(request),
                    "path": request.path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "user_id": user_id,
                },
            )


def _user_id(request) -> int | None:
    """The signed-in user's id, if the request already knows it: never a query of its own (a
    view that did not look at the user, a sign-in page, keeps its query count)."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):  # the session's user, loaded only if the view looked
        user = request.__dict__.get("_cached_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


_PROBE_PATHS = {"/healthz": "probe:healthz", "/readyz": "probe:readyz", "/metrics": "probe:metrics"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _method(request) -> str:
    return request.method if request.method in _METHODS else "OTHER"  # bounded metric labels


class ProbeMiddleware:
    """Serve /healthz, /readyz and /metrics before the host check, the HTTPS redirect and the
    session: probes reach an instance by its address, over plain HTTP, with no cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from pim_portal.views import PROBES

        probe = PROBES.get(request.path)
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponseNotAllowed(["GET", "HEAD"])
        else:
            response = probe(request)
        return response


class ContentSecurityPolicyMiddleware:
    """Django 5.2 has no CSP of its own: send the policy from settings on every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class RequestIdLogFilter(logging.Filter):
    """Put the current request id on every log record."""

    def filter(self, record):
        # Django logs a 4xx/5xx answer after the middleware is done: the request carries its id.
        request = getattr(record, "request", None)
        record.request_id = context.current().request_id or getattr(request, "request_id", None) or "-"
        return True


_QUERY = re.compile(r"\?[^ \"]*")


class QueryStringRedactFilter(logging.Filter):
    """Drop query strings from the development server's request lines (django.server): an
    approval link carries its token there."""

    def filter(self, record):
        if isinstance(record.msg, str) and record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = _QUERY.sub("?[redacted]", record.msg)
        return True


class TimeZoneMiddleware:
    """Show times in the signed-in person's time zone (accounts.User.time_zone), UTC for
    everyone else. Storage stays UTC; only template rendering and form input use this zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = getattr(getattr(request, "user", None), "time_zone", "")
        try:
            if zone:
                timezone.activate(zoneinfo.ZoneInfo(zone))
            else:
                timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
