"""Webhook subscriptions in the portal, for PIM Administrators (integrations.manage_webhooks,
with the role active): the list, one subscription with its delivery log, and the changes
(create, edit, pause, resume, replay, delete), each behind a fresh MFA step-up. Everyone else
gets a 404. The services check the permission and the step-up again."""

import secrets
from functools import partial, wraps

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from audit.event_types import EVENT_TYPES
from common.decorators import verification_redirect
from common.step_up import step_up_verified_at

from . import webhooks
from .models import WebhookDelivery, WebhookSubscription

LOG_SHOWN = 100


def manager_required(view, *, step_up: bool = False):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        early = verification_redirect(request)
        if early:
            return early
        if not request.user.has_perm(webhooks.MANAGE_PERMISSION):
            raise Http404("No such page.")
        return verification_redirect(request, step_up=step_up) or view(request, *args, **kwargs)

    return never_cache(wrapper)


def _subscription_or_404(pk) -> WebhookSubscription:
    subscription = WebhookSubscription.objects.filter(pk=pk).first()
    if subscription is None:
        raise Http404("No such webhook.")
    return subscription


class SubscriptionForm(forms.Form):
    name = forms.CharField(max_length=200)
    url = forms.CharField(label="URL", max_length=1000, help_text="https:// (plain http only in development)")
    event_types = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: an action (activation.granted), a namespace (activation.*), or * for all.",
    )
    secret = forms.CharField(
        required=False,
        max_length=256,
        help_text="At least 32 bytes; the receiver checks the signature with it. Shown only now.",
    )

    def input(self, *, keep_secret: bool) -> webhooks.SubscriptionInput:
        data = self.cleaned_data
        types = [item.strip() for item in data["event_types"].replace(",", "\n").splitlines() if item.strip()]
        secret = data["secret"] or None if keep_secret else data["secret"]
        return webhooks.SubscriptionInput(
            name=data["name"], url=data["url"], event_types=types, secret=secret
        )

    def show(self, error: ValidationError) -> None:
        for field, problems in error.message_dict.items():
            self.add_error(field if field in self.fields else None, problems)


@require_safe
@manager_required
def webhook_list(request):
    subscriptions = WebhookSubscription.objects.annotate(
        waiting=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
    ).order_by("name")
    return render(request, "integrations/webhook_list.html", {"subscriptions": subscriptions})


@require_safe
@manager_required
def webhook_detail(request, pk):
    subscription = _subscription_or_404(pk)
    log = list(subscription.deliveries.order_by("-seq", "-pk")[:LOG_SHOWN])
    waiting = subscription.deliveries.filter(status=WebhookDelivery.Status.PENDING).count()
    context = {"subscription": subscription, "log": log, "waiting": waiting, "log_limit": LOG_SHOWN}
    return render(request, "integrations/webhook_detail.html", context)


def _form_page(request, form, subscription=None):
    context = {"form": form, "subscription": subscription, "event_types": EVENT_TYPES}
    return render(request, "integrations/webhook_form.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@partial(manager_required, step_up=True)
def webhook_create(request):
    if request.method == "GET":
        return _form_page(request, SubscriptionForm(initial={"secret": secrets.token_urlsafe(32)}))
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _form_page(request, form)
    try:
        subscription = webhooks.webhook_subscription_create(
            actor=request.user,
            data=form.input(keep_secret=False),
            mfa_verified_at=step_up_verified_at(request),
        )
    except ValidationError as error:
        form.show(error)
        return _form_page(request, form)
    except PermissionDenied as error:
        messages.error(request, str(error))
        return redirect("integrations:webhook_list")
    messages.success(request, f"Webhook {subscription.name} created.")
    return redirect(reverse("integrations:webhook_detail", args=[subscription.pk]))


@require_http_methods(["GET", "POST"])
@partial(manager_required, step_up=True)
def webhook_edit(request, pk):
    subscription = _subscription_or_404(pk)
    if request.method == "GET":
        initial = {
            "name": subscription.name,
            "url": subscription.url,
            "event_types": "\n".join(subscription.event_types),
        }
        return _form_page(request, SubscriptionForm(initial=initial), subscription)
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _form_page(request, form, subscription)
    try:
        webhooks.webhook_subscription_update(
            actor=request.user,
            subscription=subscription,
            data=form.input(keep_secret=True),
            mfa_verified_at=step_up_verified_at(request),
        )
    except ValidationError as error:
        form.show(error)
        return _form_page(request, form, subscription)
    except PermissionDenied as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Webhook saved.")
    return redirect(reverse("integrations:webhook_detail", args=[subscription.pk]))


ACTIONS = {
    "pause": webhooks.webhook_subscription_pause,
    "resume": webhooks.webhook_subscription_resume,
    "delete": webhooks.webhook_subscription_delete,
}


@require_http_methods(["GET", "POST"])
def webhook_action(request, pk, action):
    return _webhook_action(request, pk, action)


@partial(manager_required, step_up=True)
def _webhook_action(request, pk, action):
    # GET is answered too: after a step-up detour the browser comes back with a GET, and is
    # sent to the subscription's page, where the button is pressed again.
    subscription = _subscription_or_404(pk)
    page = reverse("integrations:webhook_detail", args=[subscription.pk])
    if request.method != "POST":
        return redirect(page)
    verified_at = step_up_verified_at(request)
    try:
        if action == "replay":
            try:
                from_seq = int(request.POST.get("from_seq", ""))
            except ValueError:
                raise ValidationError("Give the sequence number to replay from.") from None
            queued = webhooks.webhook_replay(
                actor=request.user, subscription=subscription, from_seq=from_seq, mfa_verified_at=verified_at
            )
            messages.success(request, f"{queued} event(s) queued again from #{from_seq}.")
        elif action in ACTIONS:
            ACTIONS[action](actor=request.user, subscription=subscription, mfa_verified_at=verified_at)
            messages.success(request, f"Webhook {subscription.name}: {action} done.")
            if action == "delete":
                return redirect("integrations:webhook_list")
        else:
            raise Http404("No such action.")
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    return redirect(page)
