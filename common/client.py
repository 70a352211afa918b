"""The client's address: the one helper every part of the portal uses (audit events, sign-in
lockouts, throttles), so they all agree on who is asking."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def is_trusted_proxy(address: str) -> bool:
    """Whether ``address`` is one of PIM_TRUSTED_PROXIES (the load balancers in front)."""
    proxies = settings.PIM_TRUSTED_PROXIES
    if not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; or, when that is a trusted proxy, the right-most X-Forwarded-For address
    that is not one of the trusted proxies.

    Walking from the right trusts only what the portal's own proxies appended: a client may
    put anything at the left of the header, and nothing it writes there is believed."""
    address = str(request.META.get("REMOTE_ADDR") or "").strip()
    if not address or not is_trusted_proxy(address):
        return address or None
    header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    forwarded = [hop.strip() for hop in header.split(",")]
    for hop in reversed([hop for hop in forwarded if hop]):
        if not _is_address(hop):
            return address  # a garbled header: the proxy itself is all we know
        if not is_trusted_proxy(hop):
            return hop
        address = hop
    return address


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
