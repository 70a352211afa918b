"""The development inbox: the emails the portal queued, as their recipients would read them.
Only with DJANGO_DEBUG (the URL exists only then; pim_portal.urls) and for signed-in, verified
people: in development anyone may read anyone's email, which is the point."""

import re

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from common.decorators import verified_required

from .backends import links_on_their_own_lines
from .models import Email

_LINK = re.compile(r"(https?://[^\s<>\"]*[^\s<>\".,;:!?)])")
PAGE_SIZE = 50


def _dev_only() -> None:
    if not settings.DEBUG:
        raise Http404("No such page.")


def linked_text(text: str) -> SafeString:
    """Plain text, escaped, with its links made clickable (each on its own line)."""
    escaped = escape(links_on_their_own_lines(text))
    return mark_safe(_LINK.sub(r'<a href="\1">\1</a>', escaped))  # noqa: S308 - escaped above; links only


@require_safe
@verified_required
def inbox(request):
    _dev_only()
    emails = Email.objects.order_by("-created_at", "-pk").only(
        "pk", "to", "subject", "template", "status", "created_at"
    )
    page = Paginator(emails, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "notifications/inbox.html", {"page": page, "emails": list(page.object_list)})


@require_safe
@verified_required
def email_detail(request, pk: int):
    _dev_only()
    email = get_object_or_404(Email, pk=pk)
    return render(
        request, "notifications/email_detail.html", {"email": email, "text": linked_text(email.body_text)}
    )
