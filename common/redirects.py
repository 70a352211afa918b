"""`next` parameters: followed only when they point inside the portal (SPEC 5)."""

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest) -> str:
    """The request's `next` (POST, then GET) if it stays in the portal, else ""."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if allowed else ""


def next_or_home(request: HttpRequest) -> str:
    return safe_next(request) or resolve_url(settings.LOGIN_REDIRECT_URL)


def with_next(url: str, next_url: str) -> str:
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url
