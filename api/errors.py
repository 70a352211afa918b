"""One error shape for the whole API: ``{"error": {"code", "message", "fields"}}``.

The services raise Django's exceptions (ValidationError, PermissionDenied, Http404) and the
activations app its own (ActivationError is a ValidationError, ActivationConflict one about
the live state; TransitionNotAllowed): they are translated here into the HTTP answers an API
client expects — a refusal because of the state (often a race lost) is a 409.
"""

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.services import MfaError
from activations.models import TransitionNotAllowed
from activations.services import ActivationConflict

logger = logging.getLogger(__name__)

# Field names the services use that the API calls otherwise.
SERVICE_FIELD_NAMES = {"otp_token": "otp_code"}
NON_FIELD_KEYS = {"__all__", "non_field_errors"}


class Conflict(exceptions.APIException):
    """The object's current state does not allow this (illegal transition, lost race)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


class RequestsRefused(exceptions.APIException):
    """A call about several requests refused because of some of them (all or nothing): the
    error's fields name each one, ``{"requests": ["<id>: why", ...]}``; nothing changed."""

    default_code = "conflict"

    def __init__(self, *, status_code: int, code: str, message: str, requests: dict) -> None:
        self.status_code = status_code
        self.requests = {str(pk): why for pk, why in requests.items()}
        super().__init__(detail=message, code=code)


def exception_handler(exc, context):
    exc = translate(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 page, and the traceback in the log
    response.data = {"error": error_body(exc, response.data)}
    return response


def translate(exc):
    """Django and service exceptions as DRF exceptions (others pass through)."""
    if isinstance(exc, MfaError):
        if exc.code == "throttled":
            return exceptions.Throttled(detail=exc.messages[0])
        return exceptions.ValidationError({"otp_code": exc.messages})
    if isinstance(exc, ActivationConflict | TransitionNotAllowed):
        return Conflict(" ".join(exc.messages) if isinstance(exc, DjangoValidationError) else str(exc))
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(_validation_detail(exc))
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        return exceptions.NotFound()  # the same answer whether missing or not the caller's
    return exc


def _validation_detail(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        detail: dict[str, list[str]] = {}
        for field, messages in exc.message_dict.items():
            key = "non_field_errors" if field in NON_FIELD_KEYS else SERVICE_FIELD_NAMES.get(field, field)
            detail.setdefault(key, []).extend(messages)
        return detail
    return {"non_field_errors": exc.messages}


def error_body(exc, data) -> dict:
    code = _code(exc)
    if isinstance(exc, exceptions.ValidationError):
        fields = dict(data) if isinstance(data, dict) else {"non_field_errors": data}
        fields = {name: _messages(value) for name, value in fields.items()}
        general = fields.pop("non_field_errors", [])
        message = " ".join(general) or "Some fields are not valid: see fields."
        return {"code": code, "message": message, "fields": fields}
    detail = data.get("detail", "") if isinstance(data, dict) else data
    fields = (
        {"requests": [f"{pk}: {why}" for pk, why in exc.requests.items()]}
        if isinstance(exc, RequestsRefused)
        else {}
    )
    return {"code": code, "message": str(detail), "fields": fields}


def _messages(value) -> list[str]:
    """A field's messages as a flat list of text, as the schema says: the errors of a list's
    items (``{"0": [...]}``) or of a nested object are prefixed with where they are."""
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, nested in value.items() for message in _messages(nested)]
    if isinstance(value, list | tuple):
        return [message for nested in value for message in _messages(nested)]
    return [str(value)]


def _code(exc) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) else exc.default_code
    return "error"


@csrf_exempt  # any method: a POST to an unknown URL is a 404 too, not a CSRF failure
def not_found(request, *args, **kwargs):
    """Unknown URLs under /api/v1/ answer in the API's shape, not with the HTML page."""
    body = {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
    return JsonResponse(body, status=404)
