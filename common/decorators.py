"""Guards for views: signed in and OTP-verified, and for sensitive actions a fresh step-up.

Every portal view other than sign-in, enrolment and verification uses one of these. They need
only Django and django-otp (and the accounts app's URL names), so every app uses them, the
audit app too, without importing accounts."""

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse

from .redirects import with_next
from .step_up import mfa_is_enrolled, step_up_is_fresh, user_is_verified

_P = ParamSpec("_P")

if TYPE_CHECKING:
    from django.views import View

    _ViewBase = View  # the mixins go before a class-based view
else:
    _ViewBase = object

STEP_UP_MESSAGE = "Confirm it's you: enter a code from your authenticator app to continue."


def verification_redirect(request: HttpRequest, *, step_up: bool = False) -> HttpResponse | None:
    """Where a request must go first (sign-in, enrolment, verification), or None to proceed.

    After the detour the person comes back to this URL (for a POST: the page at the same URL,
    so views that take a POST should also answer GET)."""
    here = request.get_full_path()
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(here)
    if not user_is_verified(user):
        target = "accounts:verify" if mfa_is_enrolled(user=user) else "accounts:mfa_enrol"
        return redirect(with_next(reverse(target), here))
    if step_up and not step_up_is_fresh(request):
        messages.info(request, STEP_UP_MESSAGE)
        return redirect(with_next(reverse("accounts:verify"), here))
    return None


def verified_required(
    view: Callable[Concatenate[HttpRequest, _P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, _P], HttpResponseBase]:
    """Signed in, with this session verified by an MFA code."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: _P.args, **kwargs: _P.kwargs) -> HttpResponseBase:
        return verification_redirect(request) or view(request, *args, **kwargs)

    return wrapper


def step_up_required(
    view: Callable[Concatenate[HttpRequest, _P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, _P], HttpResponseBase]:
    """Verified, and a code was checked within PIM_STEP_UP_WINDOW (sensitive actions)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: _P.args, **kwargs: _P.kwargs) -> HttpResponseBase:
        return verification_redirect(request, step_up=True) or view(request, *args, **kwargs)

    return wrapper


class VerifiedRequiredMixin(_ViewBase):
    """verified_required for class-based views."""

    step_up = False

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return verification_redirect(request, step_up=self.step_up) or super().dispatch(
            request, *args, **kwargs
        )


class StepUpRequiredMixin(VerifiedRequiredMixin):
    """step_up_required for class-based views."""

    step_up = True
