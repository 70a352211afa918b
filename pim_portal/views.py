"""The operators' endpoints: /healthz, /readyz and /metrics (served by ProbeMiddleware, before
the host, HTTPS and session middleware: a load balancer or Prometheus reaches a web instance by
its address over plain HTTP)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import health
from .metrics import metrics_render

NO_STORE = "no-store"


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers: nothing else is checked (a liveness probe)."""
    response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = NO_STORE
    return response


def readyz(request: HttpRequest) -> HttpResponse:
    """Every readiness check; 503 naming the failing ones."""
    ok, body = health.readiness()
    response = JsonResponse(body, status=200 if ok else 503)
    response["Cache-Control"] = NO_STORE
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, only with the bearer token or from an allowed address."""
    response: HttpResponse
    if not metrics_allowed(request):
        response = JsonResponse({"error": "a bearer token or an allowed address is required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics_render(), content_type="text/plain; version=0.0.4; charset=utf-8")
    response["Cache-Control"] = NO_STORE
    return response


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.PIM_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode()):
            return True
    networks = settings.PIM_METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(network) for network in networks)
    return False


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
