"""Request id and security header middleware."""

import ipaddress
import logging
import re
import uuid
import zoneinfo

from django.conf import settings
from django.utils import timezone

from audit import context

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
                ip=request.META.get("REMOTE_ADDR") or None,
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
    if not _from_trusted_proxy(request.META.get("REMOTE_ADDR", ""), settings.PIM_TRUSTED_PROXIES):
        return None
    return incoming


def _from_trusted_proxy(address: str, proxies: list[str]) -> bool:
    if not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


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
        record.request_id = context.current().request_id or "-"
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
