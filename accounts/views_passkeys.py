"""Passkey ceremonies for the signed-in person (JSON, called by static/js/passkeys.js): adding
one (after a fresh step-up) and verifying with one (sign-in, and the step-up before
activations, approvals and administrative changes). The options and the browser's answers
are JSON; the state between the two halves of a ceremony lives in the session and is taken
out of it before it is checked, so a replayed answer finds no challenge.

The page around them (accounts:passkey_add, accounts:mfa_devices, accounts:verify) works
without these: they are what the page's script talks to."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from common.redirects import next_or_home, with_next
from common.step_up import mark_step_up, step_up_is_fresh, user_is_verified

from . import services

REGISTER_STATE_KEY = "pim_passkey_register_state"
AUTHENTICATE_STATE_KEY = "pim_passkey_authenticate_state"
MAX_BODY = 64 * 1024


def _error(message: str, status: int = 400, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _body(request: HttpRequest) -> dict:
    if len(request.body) > MAX_BODY:
        return {}
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _pop_state(request: HttpRequest, key: str) -> dict | None:
    # Out of the session and saved before anything is checked: the challenge is single use,
    # even if what follows fails.
    state = request.session.pop(key, None)
    request.session.save()
    return state if isinstance(state, dict) else None


def _step_up_detour(request: HttpRequest) -> JsonResponse | None:
    """Adding a factor is sensitive: only right after a step-up (else where to go first)."""
    if user_is_verified(request.user) and step_up_is_fresh(request):
        return None
    here = reverse("accounts:passkey_add")
    target = with_next(reverse("accounts:verify"), here)
    return _error("Confirm it's you first.", status=403, redirect=target)


@never_cache
@require_POST
@login_required
def passkey_register_begin(request):
    if detour := _step_up_detour(request):
        return detour
    try:
        options, state = services.passkey_registration_begin(user=request.user, request=request)
    except services.AccountError as error:
        return _error(error.messages[0])
    request.session[REGISTER_STATE_KEY] = state
    return JsonResponse(options)


@never_cache
@require_POST
@login_required
def passkey_register_complete(request):
    state = _pop_state(request, REGISTER_STATE_KEY)
    if detour := _step_up_detour(request):
        return detour
    data = _body(request)
    try:
        device = services.passkey_registration_complete(
            user=request.user,
            request=request,
            state=state,
            data=data.get("credential"),
            name=str(data.get("name") or ""),
        )
    except services.AccountError as error:
        return _error(error.messages[0])
    return JsonResponse({"name": device.name, "redirect": reverse("accounts:mfa_devices")})


@never_cache
@require_POST
@login_required
def passkey_verify_begin(request):
    try:
        options, state = services.passkey_authentication_begin(user=request.user, request=request)
    except services.MfaError as error:
        return _error(error.messages[0])
    request.session[AUTHENTICATE_STATE_KEY] = state
    return JsonResponse(options)


@never_cache
@require_POST
@login_required
def passkey_verify_complete(request):
    """Check the assertion; a good one is this session's step-up (factor: passkey)."""
    state = _pop_state(request, AUTHENTICATE_STATE_KEY)
    data = _body(request)
    try:
        device = services.passkey_verify(
            user=request.user, request=request, state=state, data=data.get("credential")
        )
    except services.MfaError as error:
        return _error(error.messages[0])
    mark_step_up(request, device)
    # The session key (and, with it, perhaps the CSRF token) changed: the page's forms need
    # the token that goes with the new session.
    return JsonResponse({"redirect": next_or_home(request), "csrf_token": get_token(request)})
