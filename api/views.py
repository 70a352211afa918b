"""The REST API, /api/v1/. Thin: parse, call one selector or service, render. Every object
is fetched through a selector that answers 404 for what the caller may not see."""

import hmac
import re
from datetime import UTC, datetime, timedelta

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, Throttled, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import mfa_verify_code
from activations import selectors as activation_selectors
from activations import services as activation_services
from activations.models import ActivationRequest, Approval
from activations.services import ActivationError
from alerts import services as alert_services
from alerts.models import Alert
from audit import event_exports
from audit.models import AuditEvent
from audit.refusals import audit_permission_denied
from audit.selectors import audit_reader_check
from common.step_up import device_factor, step_up_factor, step_up_verified_at, verification_is_fresh
from common.text import clean_text
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.services import ReviewError
from roles import selectors as role_selectors
from roles.scopes import MAX_SCOPE_LENGTH, scope_normalised

from . import selectors
from .authentication import ApiTokenAuthentication, VerifiedSessionAuthentication
from .errors import Conflict, RequestsRefused
from .filters import ApiAuditEventFilterSet
from .models import ApiToken
from .permissions import CanCheckRoles, CanReadAudit, CanViewAlerts
from .schema import ErrorSerializer, FilteredDownloadSchema
from .serializers import (
    GROUP_REFERENCE,
    ActivationCreateSerializer,
    ActivationRequestSerializer,
    ActiveAssignmentSerializer,
    AlertDismissInputSerializer,
    AlertFilterSerializer,
    AlertSerializer,
    ApprovalFilterSerializer,
    AuditEventSerializer,
    AuditExportFormatSerializer,
    BulkDecisionInputSerializer,
    BulkDecisionSerializer,
    ChangeRequestInputSerializer,
    CheckAnswerSerializer,
    CheckQuerySerializer,
    CheckSerializer,
    DecisionInputSerializer,
    EligibilitySerializer,
    GroupCheckSerializer,
    ReviewBulkDecisionInputSerializer,
    ReviewBulkDecisionSerializer,
    ReviewDecisionInputSerializer,
    ReviewItemFilterSerializer,
    ReviewItemSerializer,
    RoleSerializer,
)
from .services import api_token_digest, api_token_parse, api_token_touch
from .throttling import FailOpenScopedRateThrottle, TotpAttemptThrottle

FRESH_CODE_MESSAGE = "Enter a fresh code from your authenticator app to continue."
FILTER_NAMES = ("role", "requester", "older_than_hours")
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class _Cursor(CursorPagination):
    """Keyset pages; a page_size that is not a whole number from 1 to max_page_size is a 400,
    and so is a cursor the API did not make (tampered, truncated, or with a position that is
    not a value of the ordering's field): never a 404, nor a 500 from the query it would build."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_cursor_message = "This page cursor is not valid: start again from the first page."

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model  # decode_cursor checks the cursor's position against it
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from None
        if cursor is not None and cursor.position is not None:
            field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
            try:  # the field's own conversion and checks (type, integer range, length)
                field.run_validators(field.to_python(cursor.position))
            except (DjangoValidationError, ValueError, TypeError, OverflowError):
                raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from None
            if "\x00" in cursor.position:  # PostgreSQL refuses NUL in text
                raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class NamePagination(_Cursor):
    ordering = "name"


class NewestFirstPagination(_Cursor):
    ordering = ("-created_at", "-id")


class PrincipalPagination(_Cursor):
    ordering = ("principal_label", "id")


class AlertPagination(_Cursor):
    ordering = ("-first_raised_at", "-id")


class SeqPagination(_Cursor):
    """Keyset paging on the audit log's gapless sequence number: never an OFFSET."""

    ordering = "seq"
    page_size = 100
    max_page_size = 1000


def code_attempt_allowed(request) -> None:
    """Codes (and passkey answers) a person may submit through the API, on top of django-otp's
    own back-off (PIM_API_TOTP_RATE)."""
    throttle = TotpAttemptThrottle()
    if not throttle.allow_request(request, None):
        raise Throttled(wait=throttle.wait())


def step_up(request, code: str) -> tuple[datetime | None, str | None]:
    """The step-up for a privileged action, as (when, factor) for the services: a code in the
    body (checked now, throttled, single use); else, for a token, its step-up window
    (POST /api/v1/step-up/); else, for the portal's own session, that session's last check."""
    if code:
        code_attempt_allowed(request)
        device = mfa_verify_code(user=request.user, token=code)  # outside any transaction: see its doc
        return timezone.now(), device_factor(device)
    if isinstance(request.auth, ApiToken):
        # The row as it is now: the window may have been opened after this request's token
        # was read (a concurrent step-up), or closed by a revocation.
        window = ApiToken.objects.filter(pk=request.auth.pk).values("step_up_at", "step_up_factor").first()
        if window is None:
            return None, None
        return window["step_up_at"], window["step_up_factor"] or None
    if isinstance(request.successful_authenticator, VerifiedSessionAuthentication):
        return step_up_verified_at(request._request), step_up_factor(request._request)
    return None, None


def _fresh_code_message(request) -> str:
    if not isinstance(request.auth, ApiToken):
        return FRESH_CODE_MESSAGE
    return (
        f"{FRESH_CODE_MESSAGE[:-1]}, or open a step-up window for this token first "
        "(POST /api/v1/step-up/): it has none open, or it has expired."
    )


def conflict_unless_fields(error: DjangoValidationError):
    """A refusal about fields is a 400; a refusal about the object's state (already decided,
    already ended, timed out) is a 409."""
    if hasattr(error, "error_dict"):
        return error
    return Conflict(" ".join(error.messages))


# --- Roles and my assignments ----------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="The role catalog, with each role's settings"),
    retrieve=extend_schema(summary="One role and its settings"),
)
class RoleViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RoleSerializer
    pagination_class = NamePagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        return selectors.roles_catalog()


@extend_schema_view(list=extend_schema(summary="My eligible assignments in force now"))
class EligibilityViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = EligibilitySerializer
    pagination_class = None
    lookup_value_regex = UUID_PATTERN
    throttle_scope = "activation"

    def get_queryset(self):
        return role_selectors.eligibilities_for_user(user=self.request.user)

    def get_throttles(self):
        return [FailOpenScopedRateThrottle()] if self.action in {"extend", "renew"} else []

    @extend_schema(
        summary="Ask for this eligibility to be extended (it ends within 14 days)",
        request=ChangeRequestInputSerializer,
        responses={201: ActivationRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        return self._change(activation_services.extension_request, pk)

    @extend_schema(
        summary="Ask for this eligibility to be renewed (it ended within the last 30 days)",
        request=ChangeRequestInputSerializer,
        responses={201: ActivationRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        return self._change(activation_services.renewal_request, pk)

    def _change(self, service, pk):
        eligible = activation_selectors.eligible_get_own(user=self.request.user, pk=pk)
        data = _valid(ChangeRequestInputSerializer, self.request.data)
        created = service(
            requester=self.request.user,
            eligible=eligible,
            duration=data["duration"],
            justification=data["justification"],
        )
        return _request_response(self.request.user, created, status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(summary="My active assignments (roles I hold now)"))
class ActiveAssignmentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ActiveAssignmentSerializer
    pagination_class = None

    lookup_value_regex = UUID_PATTERN
    throttle_scope = "activation"

    def get_queryset(self):
        return role_selectors.active_assignments_for_user(user=self.request.user).select_related(
            "activation_request"
        )

    def get_throttles(self):
        return [FailOpenScopedRateThrottle()] if self.action in {"extend", "renew"} else []

    @extend_schema(
        summary="Ask for my direct active assignment to be extended (it ends within 14 days)",
        request=ChangeRequestInputSerializer,
        responses={201: ActivationRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        return self._change(activation_services.active_extension_request, pk)

    @extend_schema(
        summary="Ask for my direct active assignment to be renewed (it ended within the last 30 days)",
        request=ChangeRequestInputSerializer,
        responses={201: ActivationRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        return self._change(activation_services.active_renewal_request, pk)

    def _change(self, service, pk):
        assignment = activation_selectors.active_get_own(user=self.request.user, pk=pk)
        data = _valid(ChangeRequestInputSerializer, self.request.data)
        created = service(
            requester=self.request.user,
            assignment=assignment,
            duration=data["duration"],
            justification=data["justification"],
        )
        return _request_response(self.request.user, created, status.HTTP_201_CREATED)


# --- Activation requests ---------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="My activation, extension and renewal requests, newest first",
        parameters=[OpenApiParameter("status", enum=ActivationRequest.Status.values)],
    ),
    retrieve=extend_schema(summary="One request (its requester, approvers, PIM administrators, auditors)"),
)
class ActivationRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ActivationRequestSerializer
    pagination_class = NewestFirstPagination
    lookup_value_regex = UUID_PATTERN
    throttle_scope = "activation"

    def get_throttles(self):
        return [FailOpenScopedRateThrottle()] if self.action == "create" else []

    def get_queryset(self):
        wanted = self.request.query_params.get("status")
        if wanted is not None and wanted not in ActivationRequest.Status.values:
            raise ValidationError({"status": [f"One of: {', '.join(ActivationRequest.Status.values)}."]})
        return selectors.activation_requests_for_requester(user=self.request.user, status=wanted)

    def get_object(self):
        return selectors.activation_request_get_for_viewer(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(
        summary="Activate an eligible role (granted at once, or pending approval)",
        request=ActivationCreateSerializer,
        responses={201: ActivationRequestSerializer},
    )
    def create(self, request):
        data = _valid(ActivationCreateSerializer, request.data)
        try:
            eligible = activation_selectors.eligible_get_for_requester(user=request.user, pk=data["eligible"])
        except Http404:
            raise ValidationError({"eligible": ["You are not eligible for this role (any more)."]}) from None
        verified_at, factor = step_up(request, data.get("otp_code", ""))
        created = activation_services.activation_request(
            requester=request.user,
            eligible=eligible,
            duration=data["duration"],
            justification=data.get("justification", ""),
            ticket_number=data.get("ticket_number", ""),
            ticket_system=data.get("ticket_system", ""),
            scope=data.get("scope") or None,
            starts_at=data.get("starts_at"),
            mfa_verified_at=verified_at,
            mfa_factor=factor,
        )
        return _request_response(request.user, created, status.HTTP_201_CREATED)

    @extend_schema(summary="Withdraw a pending request", request=None, responses=ActivationRequestSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        target = self.get_object()
        activation_services.activation_cancel(actor=request.user, request=target)
        return _request_response(request.user, target)

    @extend_schema(
        summary="End my granted activation now", request=None, responses=ActivationRequestSerializer
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        target = self.get_object()
        try:
            activation_services.activation_deactivate(requester=request.user, request=target)
        except ActivationError as error:
            raise conflict_unless_fields(error) from None
        return _request_response(request.user, target)


# --- Approvals -------------------------------------------------------------------------------


class OldestFirstPagination(_Cursor):
    ordering = ("created_at", "id")


@extend_schema_view(
    list=extend_schema(
        summary="Requests waiting for my decision, oldest first (paged; filter by role, requester, age)",
        parameters=[ApprovalFilterSerializer],
    )
)
class ApprovalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ActivationRequestSerializer
    pagination_class = OldestFirstPagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        params = self.request.query_params
        data = _valid(
            ApprovalFilterSerializer, {name: params[name] for name in FILTER_NAMES if name in params}
        )
        filters = activation_selectors.InboxFilters(
            role=data.get("role"),
            requester=data.get("requester", ""),
            older_than=timedelta(hours=data["older_than_hours"]) if "older_than_hours" in data else None,
        )
        return selectors.approvals_inbox_for_user(user=self.request.user, filters=filters)

    @extend_schema(
        summary="Approve or deny a request (a reason is required to deny; a fresh code always)",
        request=DecisionInputSerializer,
        responses=ActivationRequestSerializer,
    )
    @action(detail=True, methods=["post"])
    def decision(self, request, pk=None):
        target = selectors.activation_request_get_for_viewer(user=request.user, pk=pk)
        data = _valid(DecisionInputSerializer, request.data)
        _ensure_can_decide(request.user, target, data)
        verified_at, factor = step_up(request, data.get("otp_code", ""))
        if not verification_is_fresh(verified_at):
            raise ValidationError({"otp_code": [_fresh_code_message(request)]})
        service = (
            activation_services.activation_approve
            if data["decision"] == Approval.Decision.APPROVE
            else activation_services.activation_deny
        )
        try:
            service(
                approver=request.user,
                request=target,
                reason=data.get("reason", ""),
                mfa_verified_at=verified_at,
                mfa_factor=factor,
            )
        except ActivationError as error:
            raise conflict_unless_fields(error) from None
        return _request_response(request.user, target)

    @extend_schema(
        summary="Approve or deny several requests with one reason and one code: all of them, or none",
        description=(
            "Nothing is decided unless every request can be: a request you may not see is a 404, "
            "one you may not decide (your own, or not its approver) a 403, and one that changed "
            "meanwhile (decided, timed out, canceled) a 409; the error's `fields.requests` names "
            "each (`<id>: why`)."
        ),
        request=BulkDecisionInputSerializer,
        responses={
            200: BulkDecisionSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Some requests are not yours to decide."),
            404: OpenApiResponse(ErrorSerializer, description="Some requests do not exist (for you)."),
            409: OpenApiResponse(ErrorSerializer, description="Some requests changed meanwhile."),
        },
    )
    @action(detail=False, methods=["post"])
    def decisions(self, request):
        data = _valid(BulkDecisionInputSerializer, request.data)
        found, unknown = activation_selectors.requests_get_for_decision(
            user=request.user, pks=data["requests"]
        )
        if unknown:
            raise RequestsRefused(
                status_code=status.HTTP_404_NOT_FOUND,
                code="not_found",
                message="Some requests do not exist (or are not yours to see); nothing was decided.",
                requests=dict.fromkeys(unknown, "No such request."),
            )
        if data["decision"] == Approval.Decision.DENY and not data.get("reason", "").strip():
            raise ValidationError({"reason": ["A reason is required to deny requests."]})
        refused = activation_services.activations_decide_check(approver=request.user, requests=found)
        if refused:
            raise RequestsRefused(
                status_code=status.HTTP_403_FORBIDDEN,
                code="permission_denied",
                message="You may not decide some of these requests; nothing was decided.",
                requests=refused,
            )
        _ensure_all_open(request.user, found)  # before a code is spent on a hopeless try
        verified_at, factor = step_up(request, data.get("otp_code", ""))
        if not verification_is_fresh(verified_at):
            raise ValidationError({"otp_code": [_fresh_code_message(request)]})
        try:
            decided = activation_services.activations_decide_all(
                approver=request.user,
                requests=found,
                decision=data["decision"],
                reason=data.get("reason", ""),
                mfa_verified_at=verified_at,
                mfa_factor=factor,
            )
        except activation_services.DecisionsConflict as error:
            raise _changed_meanwhile(error.changed) from None
        except DjangoPermissionDenied as error:
            raise PermissionDenied(str(error)) from None
        fresh = selectors.activation_requests_for_viewer(user=request.user, pks=[r.pk for r in decided])
        return Response(BulkDecisionSerializer({"requests": fresh}).data)


def _ensure_all_open(user, requests: list[ActivationRequest]) -> None:
    now = timezone.now()
    changed = {}
    for target in requests:
        try:
            activation_services.activation_decision_check(approver=user, request=target, now=now)
        except ActivationError as error:
            changed[target.pk] = " ".join(error.messages)
    if changed:
        raise _changed_meanwhile(changed)


def _changed_meanwhile(changed: dict) -> RequestsRefused:
    return RequestsRefused(
        status_code=status.HTTP_409_CONFLICT,
        code="conflict",
        message=f"{len(changed)} of the requests changed meanwhile; nothing was decided.",
        requests=changed,
    )


def _ensure_can_decide(user, target: ActivationRequest, data: dict) -> None:
    """Refuse early what the service would refuse, so no code is spent on a hopeless try
    (the service checks all of it again under the row lock)."""
    try:
        activation_services.activation_decision_check(approver=user, request=target, now=timezone.now())
    except DjangoPermissionDenied as error:
        raise PermissionDenied(str(error)) from None
    except ActivationError as error:
        raise Conflict(error.messages[0]) from None
    if data["decision"] == Approval.Decision.DENY and not data.get("reason", "").strip():
        raise ValidationError({"reason": ["A reason is required to deny a request."]})


# --- Access reviews --------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Review items assigned to me, in review runs still open",
        parameters=[ReviewItemFilterSerializer],
    )
)
class ReviewItemViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ReviewItemSerializer
    pagination_class = PrincipalPagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        filters = _valid(ReviewItemFilterSerializer, self.request.query_params.dict())
        return review_selectors.review_items_for_reviewer(
            user=self.request.user, decision=filters.get("decision", ""), instance_id=filters.get("review")
        )

    @extend_schema(
        summary="Approve or deny an item (or change my decision until the review ends)",
        request=ReviewDecisionInputSerializer,
        responses=ReviewItemSerializer,
    )
    @action(detail=True, methods=["post"])
    def decision(self, request, pk=None):
        item = review_selectors.review_item_get_for_reviewer(user=request.user, pk=pk)
        data = _valid(ReviewDecisionInputSerializer, request.data)
        decided = _review_decide(review_services.review_item_decide, reviewer=request.user, item=item, **data)
        return Response(ReviewItemSerializer(decided).data)

    @extend_schema(
        summary="Approve or deny several items with one justification: all of them, or none",
        request=ReviewBulkDecisionInputSerializer,
        responses=ReviewBulkDecisionSerializer,
    )
    @action(detail=False, methods=["post"])
    def decisions(self, request):
        data = _valid(ReviewBulkDecisionInputSerializer, request.data)
        items = review_selectors.review_items_get_for_reviewer(user=request.user, pks=data.pop("items"))
        decided = _review_decide(
            review_services.review_items_decide, reviewer=request.user, items=items, **data
        )
        return Response(ReviewBulkDecisionSerializer({"items": decided}).data)


def _review_decide(service, **arguments):
    """The service's refusals as the API answers them: not (any more) a reviewer of an item
    is a 404, a missing justification a 400, a review that has ended a 409."""
    try:
        return service(**arguments)
    except DjangoPermissionDenied:
        raise Http404("No such review item.") from None
    except ReviewError as error:
        raise conflict_unless_fields(error) from None


# --- Audit -----------------------------------------------------------------------------------


# The API takes a role by its id (the explorer also finds one by name).
ROLE_ID_PARAMETER = OpenApiParameter("role", OpenApiTypes.UUID, description="The role's id.")


@extend_schema(summary="Audit events, oldest first, cursor-paged", parameters=[ROLE_ID_PARAMETER])
class AuditEventList(ListAPIView):
    """The explorer's filters (audit.filters); a filter that is not valid is a 400 naming it."""

    serializer_class = AuditEventSerializer
    permission_classes = [CanReadAudit]
    pagination_class = SeqPagination
    queryset = AuditEvent.objects.all()
    filter_backends = [DjangoFilterBackend]
    filterset_class = ApiAuditEventFilterSet


class JsonWhateverTheFormat(BaseContentNegotiation):
    """The export's ?format= names the file's format, not a renderer (DRF's reading of it):
    the export is a plain streamed response, and its errors are JSON whatever is asked."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AuditEventExport(APIView):
    """The audit log as a file, streamed: auditors only (404 for everyone else)."""

    http_method_names = ["get", "options"]  # not HEAD: every export writes its audit event
    content_negotiation_class = JsonWhateverTheFormat
    queryset = AuditEvent.objects.all()
    filter_backends = [DjangoFilterBackend]
    filterset_class = ApiAuditEventFilterSet
    schema = FilteredDownloadSchema()

    @extend_schema(
        summary="Export audit events as CSV or JSON Lines, streamed (the export is audited)",
        description=(
            "The same filters as audit-events/. The export is pinned to the log as it stands when "
            "it starts, and an `audit.exported` event recording the filter and row count is "
            "written before the first byte. The `X-Audit-Export-Rows` header gives the row "
            "count. Needs the PIM Auditor role (anyone else gets a 404)."
        ),
        parameters=[AuditExportFormatSerializer, ROLE_ID_PARAMETER],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A CSV file, header first."),
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON object per line: events, then checkpoints."
            ),
        },
    )
    def get(self, request):
        audit_reader_check(user=request.user)
        chosen = AuditExportFormatSerializer(data=request.query_params.dict())
        search = DjangoFilterBackend().get_filterset(request, self.queryset.all(), self)
        errors = {} if chosen.is_valid() else dict(chosen.errors)
        if not search.is_valid():
            errors.update((name, list(messages)) for name, messages in search.errors.items())
        if errors:
            raise ValidationError(errors)
        export_format = chosen.validated_data["format"]
        started = event_exports.audit_export_start(
            actor=request.user, events=search.qs, params=search.params, format=export_format
        )
        content_type, extension = event_exports.FORMATS[export_format]
        response = StreamingHttpResponse(event_exports.export_chunks(started), content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
        response["X-Audit-Export-Rows"] = str(started.rows)
        add_never_cache_headers(response)
        return response


# --- Alerts ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Security alerts, newest first (open unless ?status= says otherwise)",
        description="PIM Administrators and PIM Auditors, while their role is active (anyone else: 403).",
        parameters=[AlertFilterSerializer],
    ),
    retrieve=extend_schema(
        summary="One alert and the items it affects",
        description="PIM Administrators and PIM Auditors (anyone else: 404).",
    ),
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    pagination_class = AlertPagination
    lookup_value_regex = r"[0-9]{1,18}"

    def get_permissions(self):
        # The list refuses with a 403, as audit-events/ does; one alert is a 404 (get_object).
        return [CanViewAlerts()] if self.action == "list" else super().get_permissions()

    def get_queryset(self):
        filters = _valid(AlertFilterSerializer, self.request.query_params.dict())
        return selectors.alerts_filtered(status=filters["status"], severity=filters.get("severity", ""))

    def get_object(self):
        return selectors.alert_get_for_viewer(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(
        summary="Dismiss an open alert, with a reason and a fresh code (audited alert.dismissed)",
        description=(
            "PIM Administrators only (an auditor gets a 403, anyone else a 404). A dismissed alert "
            "opens again when new items are affected; dismissing one already dismissed or resolved "
            "is a 409."
        ),
        request=AlertDismissInputSerializer,
        responses=AlertSerializer,
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        alert = self.get_object()
        if not request.user.has_perm(alert_services.MANAGE_PERMISSION):
            refusal = audit_permission_denied(
                actor=request.user,
                attempted="alert_dismiss",
                permission=alert_services.MANAGE_PERMISSION,
                target=alert,
                message="Dismissing alerts needs the PIM Administrator role, active.",
            )
            raise PermissionDenied(str(refusal))
        data = _valid(AlertDismissInputSerializer, request.data)
        # Refuse early what the service would refuse, so no code is spent on a hopeless try
        # (the service checks it all again, under the row lock).
        clean_text(data.get("reason", ""), field="reason", required=True)
        if not alert.can_become(Alert.Status.DISMISSED):
            raise Conflict(f"This alert is {alert.status}; it cannot be dismissed.")
        verified_at, _factor = step_up(request, data.get("otp_code", ""))
        if not verification_is_fresh(verified_at):
            raise ValidationError({"otp_code": [_fresh_code_message(request)]})
        try:
            alert_services.alert_dismiss(actor=request.user, alert=alert, reason=data.get("reason", ""))
        except DjangoValidationError as error:
            raise conflict_unless_fields(error) from None
        fresh = selectors.alert_get_for_viewer(user=request.user, pk=alert.pk)
        return Response(AlertSerializer(fresh).data)


# --- The authorization check -----------------------------------------------------------------


class CheckView(APIView):
    """Does a person hold a role right now? For services that gate on roles."""

    permission_classes = [CanCheckRoles]

    @extend_schema(
        summary="Does the user hold the role at the scope (or the group access) now?",
        description=(
            "Exact at the second: access that ended a moment ago is not active, whether or not "
            "the expiry job has run. An unknown user or role is simply not active. `until` null "
            "with `active` true means a permanent assignment. Needs the PIM Role Checker role.\n\n"
            "PIM for Groups: ask with `group` (the governed group's portal id or Entra object id) "
            "and `access` (`member`, the default, or `owner`) instead of `role`: the answer says "
            "whether the person holds an active assignment of that group role now (their own or "
            "through a group they are in), and names the group, the access and what it rests on "
            "(`basis`). An unknown or ungoverned group is simply not active."
        ),
        parameters=[CheckQuerySerializer],
        responses=CheckAnswerSerializer,
    )
    def get(self, request):
        query = _valid(CheckQuerySerializer, request.query_params.dict())
        reference = query.get("role") or role_selectors.GroupAccessRef(query["group"], query["access"])
        holding = role_selectors.role_holding(user=query["user"], role=reference, scope=query["scope"])
        answer = {"active": holding.active, "until": holding.until, "assignment": holding.assignment_id}
        if "group" in query:
            answer |= _group_fields(query["group"], query["access"])
            return Response(GroupCheckSerializer(answer).data)
        return Response(CheckSerializer(answer).data)

    def dispatch(self, request, *args, **kwargs):
        """A well-formed GET with a bearer token that may ask is answered in one statement
        (api.selectors.check_for_token): no DRF request, serializer or ORM query. Anything
        else (a session, a malformed question, a token refused, an ambiguous role) takes
        DRF's path above, which answers it exactly as before."""
        if request.method == "GET":
            answer = _lean_check(request)
            if answer is not None:
                return answer
        return super().dispatch(request, *args, **kwargs)


def _lean_check(request) -> JsonResponse | None:
    keyword, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if keyword.lower() != ApiTokenAuthentication.keyword.lower():
        return None
    parsed = api_token_parse(raw.strip())
    question = _lean_question(request.GET)
    if parsed is None or question is None:
        return None
    prefix, token = parsed
    now = timezone.now()
    found = selectors.check_for_token(prefix=prefix, at=now, **question)
    if (
        found is None
        or not found.usable
        or found.holding is None
        or not hmac.compare_digest(found.key_hash, api_token_digest(token))
    ):
        return None
    api_token_touch(token=ApiToken(pk=found.token_id, last_used_at=found.last_used_at), now=now)
    holding = found.holding
    until = holding.until.astimezone(UTC).isoformat().replace("+00:00", "Z") if holding.until else None
    assignment = str(holding.assignment_id) if holding.assignment_id else None
    answer = {"active": holding.active, "until": until, "assignment": assignment}
    role = question["role"]
    if isinstance(role, role_selectors.GroupAccessRef):
        answer |= _group_fields(role.group, role.access)
    return JsonResponse(answer)


def _group_fields(group: str, access: str) -> dict[str, str]:
    return {"group": group, "access": access, "basis": "pim_assignment"}


def _lean_question(params) -> dict | None:
    """user, role (or group and access) and scope as CheckQuerySerializer would accept them,
    or None for anything it might refuse (which then gets its 400 from the serializer itself)."""
    if "group" in params or "access" in params:
        return _lean_group_question(params)
    limits = {"user": 150, "role": 64, "scope": MAX_SCOPE_LENGTH}
    question: dict = {}
    for name, limit in limits.items():
        value = params.get(name, "/" if name == "scope" else None)
        if not isinstance(value, str):
            return None
        value = value.strip()
        if not value or len(value) > limit or "\x00" in value or not value.isprintable():
            return None
        question[name] = value
    try:
        scope_normalised(question["scope"])
    except DjangoValidationError:
        return None
    return question


def _lean_group_question(params) -> dict | None:
    """A group question (PIM for Groups) exactly as CheckQuerySerializer accepts it, else None."""
    user, group = params.get("user"), params.get("group")
    access, scope = params.get("access", "member"), params.get("scope", "/")
    if "role" in params or not isinstance(user, str) or not isinstance(group, str):
        return None
    # access as given (a ChoiceField does not trim); the others trimmed, as their CharFields do
    user, group, access, scope = user.strip(), group.strip(), str(access), str(scope).strip()
    if not user or len(user) > 150 or "\x00" in user or not user.isprintable():
        return None
    if not re.fullmatch(GROUP_REFERENCE, group) or access not in ("member", "owner") or scope != "/":
        return None
    return {"user": user, "role": role_selectors.GroupAccessRef(group, access), "scope": scope}


# --- Helpers ---------------------------------------------------------------------------------


def _valid(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _request_response(user, request: ActivationRequest, code=status.HTTP_200_OK) -> Response:
    fresh = selectors.activation_request_get_for_viewer(user=user, pk=request.pk)
    return Response(ActivationRequestSerializer(fresh).data, status=code)
