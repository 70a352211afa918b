"""Portal pages of the API app: the signed-in person's API tokens, and the API docs."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from common.decorators import step_up_required, verified_required

from . import selectors, services
from .forms import TokenCreateForm


@verified_required
def tokens(request):
    now = timezone.now()
    token_list = list(selectors.api_tokens_for_user(user=request.user))
    for token in token_list:
        token.current_status = token.status(now)
    return render(request, "api/tokens.html", {"tokens": token_list})


@never_cache
@step_up_required
def token_create(request):
    """GET: the form; POST: make the token and show its secret, this once."""
    form = TokenCreateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        now = timezone.now()
        expires_at = now + timedelta(days=int(days)) if days else None
        try:
            token, secret = services.api_token_create(
                actor=request.user,
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=expires_at,
                now=now,
            )
        except ValidationError as error:
            _add_errors(form, error)
        except PermissionDenied as error:
            form.add_error(None, str(error))  # the break-glass account has no tokens
        else:
            return render(request, "api/token_created.html", {"token": token, "secret": secret})
    return render(request, "api/token_create.html", {"form": form})


@require_POST
@verified_required
def token_revoke(request, pk):
    token = selectors.api_token_get_for_user(user=request.user, pk=pk)
    try:
        services.api_token_revoke(actor=request.user, token=token)
    except services.TokenError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"The token “{token.name}” was revoked: it no longer works.")
    return redirect("api:tokens")


@require_GET
def docs(request):
    """Swagger UI from vendored files (drf-spectacular-sidecar), started by a static script so
    the page keeps the portal's CSP (script-src 'self', no inline code)."""
    return render(request, "api/docs.html")


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, field_messages)
    else:
        form.add_error(None, error.messages)
