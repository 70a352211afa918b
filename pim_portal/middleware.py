"""Request id and security header middleware."""

import logging
import re
import uuid

from django.conf import settings

from audit import context

# A caller (load balancer) may pass its own id; anything else is replaced, never trusted blindly.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_MAX_USER_AGENT = 400


class RequestIdMiddleware:
    """Give every request an id, expose it in X-Request-ID and to audit events and logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
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
            context.reset(token)
        response["X-Request-ID"] = request_id
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
        record.request_id = context.current().request_id or "-"
        return True
