"""Access review pages: My reviews (reviewers), the reviews admin (PIM Administrators; read
only for PIM Auditors) and the reports.

Thin: parse the input, call one selector or service, render. Objects a person may not see
answer 404; every state change is a POST; a refusal comes back as a message, never a 500."""

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from common.decorators import step_up_required, verification_redirect, verified_required

from . import reports, selectors, services
from .forms import BulkDecisionForm, DecisionForm, ReviewDefinitionForm
from .models import ReviewInstance

PAGE_SIZE = 100
safe_methods_and_post = require_http_methods(["GET", "HEAD", "POST"])


# --- My reviews ----------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@verified_required
def my_reviews(request):
    """The items the signed-in reviewer is asked to decide, in runs still open."""
    now = timezone.now()
    decision = _decision_filter(request.GET)
    review = _uuid_or_none(request.GET.get("review"))
    items = selectors.review_items_for_reviewer(
        user=request.user, decision=decision, instance_id=review, at=now
    )
    page = Paginator(selectors.with_live_usage(items, at=now), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "items": list(page.object_list),
        "progress": selectors.reviewer_progress(user=request.user, at=now),
        "to_accept": selectors.recommendations_to_accept(user=request.user, instance_id=review, at=now),
        "decision": decision,
        "review": review,
        "filter_query": _my_reviews_query({"decision": decision, "review": review}),
        "here_query": _my_reviews_query({"decision": decision, "review": review, "page": page.number}),
        "now": now,
    }
    return render(request, "reviews/my_reviews.html", context)


@safe_methods_and_post
@verified_required
def item_decide(request, pk):
    """Approve or deny one item (or change the decision until the run ends)."""
    if request.method != "POST":
        return redirect("reviews:my_reviews")  # back from a sign-in detour
    item = selectors.review_item_get_for_reviewer(user=request.user, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_text())
    else:
        try:
            services.review_item_decide(reviewer=request.user, item=item, **form.cleaned_data)
        except PermissionDenied:
            raise Http404("No such review item.") from None
        except ValidationError as error:
            messages.error(request, _refusal(error))
        else:
            messages.success(request, f"{_verb(form.cleaned_data['decision'])}: {item.principal_label}.")
    return redirect(_back_to_my_reviews(request.POST, anchor=f"item-{item.pk}"))


@safe_methods_and_post
@verified_required
def items_decide(request):
    """Approve or deny a selection of items with one justification."""
    if request.method != "POST":
        return redirect("reviews:my_reviews")
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_text())
        return redirect(_back_to_my_reviews(request.POST))
    items = selectors.review_items_get_for_reviewer(user=request.user, pks=form.cleaned_data["items"])
    try:
        decided = services.review_items_decide(
            reviewer=request.user,
            items=items,
            decision=form.cleaned_data["decision"],
            justification=form.cleaned_data["justification"],
        )
    except PermissionDenied:
        raise Http404("No such review item.") from None
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        count = len(decided)
        messages.success(
            request, f"{_verb(form.cleaned_data['decision'])}: {count} item{'s' if count != 1 else ''}."
        )
    return redirect(_back_to_my_reviews(request.POST))


@safe_methods_and_post
@verified_required
def item_reset(request, pk):
    """Take a decision back (the item is undecided again) while the run is open."""
    if request.method != "POST":
        return redirect("reviews:my_reviews")
    item = selectors.review_item_get_for_reviewer(user=request.user, pk=pk)
    try:
        services.review_item_reset(reviewer=request.user, item=item)
    except PermissionDenied:
        raise Http404("No such review item.") from None
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        messages.success(request, f"Decision reset: {item.principal_label} is not decided.")
    return redirect(_back_to_my_reviews(request.POST, anchor=f"item-{item.pk}"))


@safe_methods_and_post
@verified_required
def accept_recommendations(request):
    """Take the recommendation on every item not decided yet (in one run, or all open runs)."""
    if request.method != "POST":
        return redirect("reviews:my_reviews")
    try:
        accepted = services.review_items_accept_recommendations(
            reviewer=request.user, instance_id=_uuid_or_none(request.POST.get("review"))
        )
    except PermissionDenied:
        raise Http404("No such review item.") from None
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        count = len(accepted)
        if count:
            messages.success(request, f"Recommendations accepted: {count} item{'s' if count != 1 else ''}.")
        else:
            messages.info(request, "No undecided item has a recommendation to accept.")
    return redirect(_back_to_my_reviews(request.POST))


def _decision_filter(data) -> str:
    value = data.get("decision", "")
    return value if value in selectors.DECISION_FILTERS else ""


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _my_reviews_query(values: dict) -> str:
    return urlencode({key: str(value) for key, value in values.items() if value})


def _back_to_my_reviews(data, anchor: str = "") -> str:
    """My reviews with the filters and page the decision was made on (only known keys: never
    an address from the request)."""
    page = data.get("page", "")
    query = _my_reviews_query(
        {
            "decision": _decision_filter({"decision": data.get("decision_filter", "")}),
            "review": _uuid_or_none(data.get("review")),
            "page": page if page.isdigit() else "",
        }
    )
    url = reverse("reviews:my_reviews") + (f"?{query}" if query else "")
    return url + (f"#{anchor}" if anchor else "")


def _verb(decision: str) -> str:
    return {"approve": "Approved", "deny": "Denied"}.get(decision, "Marked \u201cdon\u2019t know\u201d")


def _refusal(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- Reviews admin -------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@verified_required
def definition_list(request):
    definitions = selectors.definitions_for_admin(user=request.user)
    return render(request, "reviews/definition_list.html", {"definitions": definitions})


@safe_methods_and_post
@verified_required
def definition_create(request):
    selectors.require_permission(user=request.user, perm=selectors.ADD_DEFINITION)
    if step_up := verification_redirect(request, step_up=True):
        return step_up  # an administrative change: a fresh code first (after the 404 for outsiders)
    initial = {"start_date": timezone.now().date()}
    form = ReviewDefinitionForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            definition = services.review_definition_create(actor=request.user, **form.service_arguments())
        except PermissionDenied:
            raise Http404("No such page.") from None
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Access review {definition.name} created.")
            return redirect("reviews:definition_detail", pk=definition.pk)
    return render(request, "reviews/definition_form.html", {"form": form, "definition": None})


@safe_methods_and_post
@verified_required
def definition_edit(request, pk):
    definition = selectors.definition_get_for_admin(
        user=request.user, pk=pk, perm=selectors.CHANGE_DEFINITION
    )
    if step_up := verification_redirect(request, step_up=True):
        return step_up  # an administrative change: a fresh code first (after the 404 for outsiders)
    form = ReviewDefinitionForm(
        request.POST if request.method == "POST" else None,
        initial=ReviewDefinitionForm.initial_from(definition),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.review_definition_update(
                actor=request.user, definition=definition, **form.service_arguments()
            )
        except PermissionDenied:
            raise Http404("No such review.") from None
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Access review {form.cleaned_data['name']} saved.")
            return redirect("reviews:definition_detail", pk=definition.pk)
    return render(request, "reviews/definition_form.html", {"form": form, "definition": definition})


@require_http_methods(["GET", "HEAD"])
@verified_required
def definition_detail(request, pk):
    """A definition's settings and the history of its runs, with links to their reports."""
    definition = selectors.definition_get_for_admin(user=request.user, pk=pk)
    context = {
        "definition": definition,
        "instances": selectors.definition_instances(definition=definition),
    }
    return render(request, "reviews/definition_detail.html", context)


@require_http_methods(["GET", "HEAD"])
@verified_required
def instance_detail(request, pk):
    """One run: its progress and items (filtered by decision), End now and Apply results."""
    instance = selectors.instance_get_for_viewer(user=request.user, pk=pk)
    decision = _decision_filter(request.GET)
    now = timezone.now()
    items = selectors.with_live_usage(selectors.instance_items(instance=instance, decision=decision), at=now)
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "instance": instance,
        "definition": instance.definition,
        "progress": selectors.instance_progress(instance=instance),
        "page": page,
        "items": list(page.object_list),
        "decision": decision,
        "filter_query": _my_reviews_query({"decision": decision}),
        "now": now,
    }
    return render(request, "reviews/instance_detail.html", context)


@safe_methods_and_post
@step_up_required
def instance_end(request, pk):
    """End a run now (applied at once if the definition applies automatically)."""
    return _instance_action(request, pk, _end)


@safe_methods_and_post
@step_up_required
def instance_apply(request, pk):
    """Carry out the results of an ended run (removes denied access)."""
    return _instance_action(request, pk, _apply)


def _instance_action(request, pk, action):
    instance = selectors.instance_get_for_viewer(user=request.user, pk=pk, perm=selectors.CHANGE_DEFINITION)
    if request.method == "POST":
        try:
            messages.success(request, action(request.user, instance))
        except PermissionDenied:
            raise Http404("No such review.") from None
        except ValidationError as error:
            messages.error(request, _refusal(error))
    return redirect("reviews:instance_detail", pk=instance.pk)


def _end(user, instance: ReviewInstance) -> str:
    instance = services.review_instance_end_early(actor=user, instance=instance)
    if instance.status == ReviewInstance.Status.APPLIED:
        return "The review has ended and its results were applied."
    return "The review has ended. Apply the results when you are ready."


def _apply(user, instance: ReviewInstance) -> str:
    counts = services.review_instance_apply(actor=user, instance=instance)
    if not counts:
        return "The results were already applied."
    labels = dict(services.Outcome.choices)
    summary = ", ".join(f"{labels.get(key, key).lower()}: {n}" for key, n in sorted(counts.items()))
    return f"Results applied ({summary})."


# --- Reports -------------------------------------------------------------------------------


@require_GET  # not HEAD: every export is audited, and a HEAD would record one too
@verified_required
def report_csv(request, pk):
    return _report(request, pk, "csv", reports.csv_stream, reports.CSV_TYPE)


@require_GET
@verified_required
def report_xlsx(request, pk):
    return _report(request, pk, "xlsx", reports.xlsx_stream, reports.XLSX_TYPE)


def _report(request, pk, file_format, stream, content_type):
    """A run's report for auditors, streamed (constant memory), its export audited."""
    instance = selectors.instance_get_for_viewer(user=request.user, pk=pk, perm=selectors.VIEW_ITEMS)
    reports.review_report_exported(actor=request.user, instance=instance, file_format=file_format)
    response = StreamingHttpResponse(stream(instance), content_type=content_type)
    filename = reports.report_filename(instance, file_format)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET  # not HEAD: every export is audited
@verified_required
def history_csv(request, pk):
    return _history(request, pk, "csv", reports.history_csv_stream, reports.CSV_TYPE)


@require_GET
@verified_required
def history_xlsx(request, pk):
    return _history(request, pk, "xlsx", reports.history_xlsx_stream, reports.XLSX_TYPE)


def _history(request, pk, file_format, stream, content_type):
    """Every run of a recurring review, item by item, streamed, its export audited."""
    selectors.require_permission(user=request.user, perm=selectors.VIEW_ITEMS)
    definition = selectors.definition_get_for_admin(user=request.user, pk=pk)
    reports.review_history_exported(actor=request.user, definition=definition, file_format=file_format)
    response = StreamingHttpResponse(stream(definition), content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="{reports.history_filename(definition, file_format)}"'
    )
    return response
