"""The audit explorer, one event and exports: for audit readers only (audit.view_auditevent),
everyone else gets a 404. Nothing here changes state, except that an export writes its own
audit event."""

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import event_exports, selectors
from .decorators import audit_reader_required
from .filters import AuditEventFilterSet
from .models import AuditEvent

PAGE_KEYS = ("before", "after", "format")


def _search(request) -> AuditEventFilterSet:
    return AuditEventFilterSet(request.GET, queryset=AuditEvent.objects.all())


@audit_reader_required
def event_list(request):
    search = _search(request)
    page = None
    if search.is_valid():
        page = selectors.event_page(
            events=search.qs,
            before=selectors.page_key(request.GET.get("before")),
            after=selectors.page_key(request.GET.get("after")),
        )
    context = {"form": search.form, "page": page, "query": _filter_query(request)}
    return render(request, "audit/event_list.html", context)


@audit_reader_required
def event_detail(request, seq):
    event = selectors.event_get(seq=seq)
    return render(request, "audit/event_detail.html", {"event": event})


@require_GET  # not HEAD: every export writes its audit event
@audit_reader_required
def export(request):
    search = _search(request)
    form = search.form
    export_format = request.GET.get("format", "")
    if export_format not in event_exports.FORMATS:
        form.is_valid()
        form.add_error(None, "Choose an export format: CSV, JSON Lines or XLSX.")
    if not search.is_valid():
        return render(
            request, "audit/event_list.html", {"form": form, "query": _filter_query(request)}, status=400
        )
    started = event_exports.audit_export_start(
        actor=request.user, events=search.qs, params=search.params, format=export_format
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
