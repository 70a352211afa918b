from axes.handlers.proxy import AxesProxyHandler
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from common.decorators import step_up_required, verification_redirect, verified_required
from common.redirects import next_or_home, safe_next, with_next
from common.step_up import mark_step_up, mfa_is_enrolled, passkeys_enrolled, user_is_verified

from . import selectors, services, throttle
from .backends import password_login_mode
from .forms import CodeForm, TimeZoneForm
from .mfa import totp_qr_data_uri, totp_secret_display
from .sso import sso_context


class SignInView(auth_views.LoginView):
    """Password first; then the code (verify) or, without an authenticator yet, enrolment."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sso_context()}

    def post(self, request, *args, **kwargs):
        if password_login_mode() == "off":
            messages.error(request, "Signing in with a password is turned off: use single sign-on.")
            return redirect(request.get_full_path())
        return super().post(request, *args, **kwargs)

    def get_success_url(self):
        next_url = self.get_redirect_url()  # LoginView keeps it only if it stays in the portal
        user = self.request.user
        if user_is_verified(user):
            return next_url or super().get_success_url()
        target = "accounts:verify" if mfa_is_enrolled(user=user) else "accounts:mfa_enrol"
        return with_next(reverse(target), next_url)


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""


@login_required
def verify(request):
    """Enter a code: completes sign-in, and is the step-up before sensitive actions."""
    if not mfa_is_enrolled(user=request.user):
        return redirect(with_next(reverse("accounts:mfa_enrol"), safe_next(request)))
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        username = request.user.get_username().lower()
        if not throttle.code_attempt_allowed(request, username=username):
            form.add_error("otp_token", throttle.lockout_message(throttle.locked_until(request, username)))
            return render(
                request, "accounts/verify.html", {"form": form, "next": safe_next(request)}, status=429
            )
        try:
            device = services.mfa_verify_code(user=request.user, token=form.cleaned_data["otp_token"])
        except services.MfaError as error:
            # Wrong codes count against the account and the address like wrong passwords.
            AxesProxyHandler.user_login_failed(
                sender=verify, credentials={"username": username}, request=request
            )
            message = error.messages[0]
            if getattr(request, "axes_locked_out", False):
                # Said here, on the code form, not by the sign-in page AxesMiddleware would show.
                request.axes_locked_out = False
                message = throttle.lockout_message(throttle.locked_until(request, username))
            form.add_error("otp_token", message)
        else:
            mark_step_up(request, device)
            return redirect(next_or_home(request))
    context = {"form": form, "next": safe_next(request), "has_passkeys": passkeys_enrolled(user=request.user)}
    return render(request, "accounts/verify.html", context)


def locked_out(request, *args):
    """django-axes' lockout response: the sign-in page again, saying until when."""
    credentials = args[-1] if args and isinstance(args[-1], dict) else None
    username = throttle.attempt_username(request, credentials)
    message = throttle.lockout_message(throttle.locked_until(request, username))
    form = AuthenticationForm(request)
    context = {"form": form, "locked_out": message, "next": safe_next(request), **sso_context()}
    return render(request, "accounts/login.html", context, status=429)


@never_cache
@login_required
def mfa_enrol(request):
    """Set up an authenticator app: start (POST), scan and confirm with a code (POST)."""
    if mfa_is_enrolled(user=request.user):
        # Adding a second factor is itself sensitive: only right after a code check.
        detour = verification_redirect(request, step_up=True)
        if detour:
            return detour
    next_url = safe_next(request)
    if request.method == "POST" and "start" in request.POST:
        services.mfa_enrolment_start(user=request.user)
        return redirect(with_next(reverse("accounts:mfa_enrol"), next_url))
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            device, codes = services.mfa_enrolment_confirm(
                user=request.user, token=form.cleaned_data["otp_token"]
            )
        except services.MfaError as error:
            form.add_error("otp_token", error)
        else:
            mark_step_up(request, device)
            return _show_recovery_codes(request, codes, next_url=next_or_home(request), enrolled=True)
    device = selectors.mfa_pending_device(user=request.user)
    context = {"device": device, "form": form, "next": next_url}
    if device is not None:
        context.update(qr=totp_qr_data_uri(device), secret=totp_secret_display(device))
    return render(request, "accounts/mfa_enrol.html", context)


@verified_required
def mfa_devices(request):
    """The signed-in person's own authenticators, passkeys and recovery codes (the Security
    page); POST removes an app or a passkey."""
    if request.method == "POST":
        if "passkey" in request.POST:
            return _passkey_remove(request)
        return _mfa_device_remove(request)
    context = {
        "devices": selectors.mfa_devices_for_user(user=request.user),
        "passkeys": selectors.passkeys_for_user(user=request.user),
        "recovery_codes_left": selectors.recovery_codes_left(user=request.user),
    }
    return render(request, "accounts/mfa_devices.html", context)


def _passkey_remove(request):
    detour = verification_redirect(request, step_up=True)
    if detour:
        return detour
    device = selectors.passkey_get_for_user(user=request.user, pk=request.POST.get("passkey", ""))
    try:
        services.passkey_remove(user=request.user, device=device)
    except services.AccountError as error:
        messages.error(request, error.messages[0])
    else:
        update_session_auth_hash(request, request.user)  # this session stays; the others end
        messages.success(request, f"The passkey {device.name} was removed: it no longer signs you in.")
    return redirect("accounts:mfa_devices")


@never_cache
@step_up_required
def passkey_add(request):
    """Name a new passkey; the page's script runs the ceremony (accounts.views_passkeys)."""
    return render(request, "accounts/passkey_add.html", {"name_max": services.PASSKEY_NAME_MAX})


def _mfa_device_remove(request):
    detour = verification_redirect(request, step_up=True)
    if detour:
        return detour
    device = selectors.mfa_device_get_for_user(user=request.user, pk=request.POST.get("device", ""))
    try:
        services.mfa_device_remove(user=request.user, device=device)
    except services.AccountError as error:
        messages.error(request, error.messages[0])
    else:
        update_session_auth_hash(request, request.user)  # this session stays; the others end
        messages.success(
            request, f"{device.name} was removed: its codes no longer work, and your other sessions ended."
        )
    return redirect("accounts:mfa_devices")


@never_cache
@step_up_required
def mfa_recovery_codes(request):
    """GET explains, POST replaces the recovery codes and shows the new ones once."""
    if request.method == "POST":
        codes = services.mfa_recovery_codes_regenerate(user=request.user)
        update_session_auth_hash(request, request.user)  # this session stays; the others end
        return _show_recovery_codes(request, codes, next_url=reverse("accounts:mfa_devices"), enrolled=False)
    left = selectors.recovery_codes_left(user=request.user)
    return render(request, "accounts/mfa_recovery_codes.html", {"recovery_codes_left": left})


def _show_recovery_codes(request, codes, *, next_url, enrolled):
    # Rendered in the POST's response, never stored readable: shown exactly once.
    context = {"codes": codes, "next": next_url, "enrolled": enrolled}
    return render(request, "accounts/mfa_recovery_codes_new.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@verified_required
def time_zone(request):
    """The person's time zone: chosen here, or the browser's, sent once by static/js/time-zone.js
    (detected=1, answered 204 and never overriding a choice)."""
    form = TimeZoneForm(
        request.POST if request.method == "POST" else None,
        initial={"time_zone": request.user.time_zone or "UTC"},
    )
    if request.method == "POST" and form.is_valid():
        detected = form.cleaned_data["detected"]
        try:
            services.user_time_zone_set(
                user=request.user, time_zone=form.cleaned_data["time_zone"], detected=detected
            )
        except ValidationError as error:
            form.add_error("time_zone", error.messages)
        else:
            if detected:
                return HttpResponse(status=204)
            messages.success(request, f"Times are now shown in {form.cleaned_data['time_zone']}.")
            return redirect(safe_next(request) or reverse("accounts:time_zone"))
    if request.method == "POST" and form.cleaned_data.get("detected"):
        return HttpResponse(status=400)
    return render(request, "accounts/time_zone.html", {"form": form})
