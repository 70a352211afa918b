"""The audit explorer, one event, an activation's evidence and exports: for audit readers only
(audit.view_auditevent), everyone else gets a 404. Nothing here changes state, except that an
export writes its own audit event."""

from functools import wraps

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from common.decorators import verified_required

from . import event_exports, evidence, selectors
from .forms import EventFilterForm

PAGE_KEYS = ("before", "after", "format")


def audit_reader_required(view):
    """Signed in and MFA-verified, and allowed to read the audit log (else 404); never cached."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        selectors.audit_reader_check(user=request.user)
        return view(request, *args, **kwargs)

    return never_cache(require_safe(verified_required(wrapper)))


@audit_reader_required
def event_list(request):
    form = EventFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = selectors.event_page(
            criteria=form.criteria(),
            before=selectors.page_key(request.GET.get("before")),
            after=selectors.page_key(request.GET.get("after")),
        )
    context = {"form": form, "page": page, "query": _filter_query(request)}
    return render(request, "audit/event_list.html", context)


@audit_reader_required
def event_detail(request, seq):
    event = selectors.event_get(seq=seq)
    return render(request, "audit/event_detail.html", {"event": event})


@audit_reader_required
def activation_evidence(request, pk):
    return render(
        request, "audit/activation_evidence.html", {"evidence": evidence.activation_evidence(pk=pk)}
    )


@require_GET  # not HEAD: every export writes its audit event
@audit_reader_required
def export(request):
    form = EventFilterForm(request.GET)
    export_format = request.GET.get("format", "")
    if export_format not in event_exports.FORMATS:
        form.is_valid()
        form.add_error(None, "Choose an export format: CSV, JSON Lines or XLSX.")
    if not form.is_valid():
        return render(
            request, "audit/event_list.html", {"form": form, "query": _filter_query(request)}, status=400
        )
    started = event_exports.audit_export_start(
        actor=request.user, criteria=form.criteria(), format=export_format
    )
    content_type, extension = event_exports.FORMATS[export_format]
    response = StreamingHttpResponse(event_exports.export_chunks(started), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    response["X-Audit-Export-Rows"] = str(started.rows)
    return response


def _filter_query(request) -> str:
    """The filter of this page as a query string, for the paging and export links."""
    query = request.GET.copy()
    for key in PAGE_KEYS:
        query.pop(key, None)
    return query.urlencode()
