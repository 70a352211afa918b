"""Input and output shapes of the API. Input serializers only parse and check shapes; the
rules (policy, eligibility, who may do what) are the services'."""

from datetime import timedelta
from typing import overload

from django.utils.dateparse import parse_duration
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from accounts.services import MAX_CODE_INPUT
from activations.models import ActivationRequest, Approval
from activations.services import MAX_BULK_ITEMS as MAX_BULK_DECISIONS
from alerts.models import Alert
from audit.models import AuditEvent
from reviews.forms import MAX_BULK_ITEMS
from reviews.models import ReviewItem
from reviews.selectors import DECISION_FILTERS
from roles.models import ActiveAssignment, EligibleAssignment, Role, RoleSettings
from roles.scopes import MAX_SCOPE_LENGTH, scope_normalised

MAX_DURATION = timedelta(days=3650)  # far beyond any policy; keeps date arithmetic in range


@overload
def _seconds(duration: timedelta) -> int: ...
@overload
def _seconds(duration: None) -> None: ...
def _seconds(duration: timedelta | None) -> int | None:
    return None if duration is None else int(duration.total_seconds())


# --- Fields ----------------------------------------------------------------------------------


# The normal form (roles.scopes) as a pattern, for the schema: segments of letters, digits and
# ._()-, none of them "." or "..".
_SCOPE_SEGMENT = r"(?:[A-Za-z0-9._()-]*[A-Za-z0-9_()-][A-Za-z0-9._()-]*|\.{3,})"
SCOPE_PATTERN = rf"^/(?:{_SCOPE_SEGMENT}(?:/{_SCOPE_SEGMENT})*)?$"


@extend_schema_field({"type": "string", "pattern": SCOPE_PATTERN, "maxLength": MAX_SCOPE_LENGTH})
class ScopeField(serializers.CharField):
    """A scope in normal form (roles.scopes.scope_normalised: the services' rule): no ``.`` or
    ``..`` segment, no empty segment, no trailing ``/``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_SCOPE_LENGTH)
        super().__init__(**kwargs)
        self.validators.append(scope_normalised)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "description": "seconds"},
            {"type": "string", "format": "duration", "description": "ISO 8601, e.g. PT2H"},
        ],
        "example": "PT2H",
    }
)
class DurationField(serializers.Field):
    """A duration as ISO 8601 ("PT2H", "P1DT30M") or a whole number of seconds."""

    default_error_messages = {
        "invalid": "Give a duration as ISO 8601 (e.g. PT2H) or a whole number of seconds.",
        "positive": "A duration must be positive.",
        "too_long": "A duration is at most 10 years.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            if abs(data) > MAX_DURATION.total_seconds():
                self.fail("too_long")
            duration = timedelta(seconds=data)
        elif isinstance(data, str) and data.lstrip("+-").upper().startswith("P") and len(data) <= 40:
            try:
                duration = parse_duration(data.upper())
            except (OverflowError, ValueError):
                self.fail("too_long")
            if duration is None:
                self.fail("invalid")
        else:
            self.fail("invalid")
        if duration <= timedelta(0):
            self.fail("positive")
        if duration > MAX_DURATION:
            self.fail("too_long")
        return duration

    def to_representation(self, value):
        return _seconds(value)


class TextField(serializers.CharField):
    """Free text: its length and control characters are the services' to judge (clean_text),
    so the message is the same as in the portal."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("max_length", 20000)  # a hard bound on what is parsed at all
        super().__init__(**kwargs)


class OtpCodeField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", MAX_CODE_INPUT)
        kwargs.setdefault(
            "help_text",
            "A fresh code from your authenticator app (or a recovery code): the step-up for this "
            "action. Each code works once. Not needed while this token's step-up window is open "
            "(POST /api/v1/step-up/), except that a phishing-resistant role takes a passkey's window.",
        )
        super().__init__(**kwargs)


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo or an attempt to set status, approvers or the
    requester fails loudly), except the read-only fields of the matching output (``echo``),
    which are ignored so that a client may send back what it read."""

    echo: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields) - set(self.echo)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field: it cannot be set here."] for name in sorted(unknown)}
                )
        return super().to_internal_value(data)


# --- Roles and assignments -------------------------------------------------------------------


class RoleSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name", "kind", "template_id", "tier", "privileged"]


class RoleSettingsSummarySerializer(serializers.ModelSerializer):
    activation_max_duration = serializers.SerializerMethodField(help_text="seconds")
    approval_timeout = serializers.SerializerMethodField(help_text="seconds")
    eligible_max_duration = serializers.SerializerMethodField(help_text="seconds")
    active_max_duration = serializers.SerializerMethodField(help_text="seconds")

    class Meta:
        model = RoleSettings
        fields = [
            "activation_max_duration",
            "require_mfa",
            "activation_authentication_strength",
            "approval_authentication_strength",
            "require_justification",
            "require_ticket",
            "require_approval",
            "approvals_required",
            "approval_timeout",
            "eligible_allow_permanent",
            "eligible_max_duration",
            "active_allow_permanent",
            "active_max_duration",
        ]

    def get_activation_max_duration(self, obj) -> int:
        return _seconds(obj.activation_max_duration)

    def get_approval_timeout(self, obj) -> int:
        return _seconds(obj.approval_timeout)

    def get_eligible_max_duration(self, obj) -> int:
        return _seconds(obj.eligible_max_duration)

    def get_active_max_duration(self, obj) -> int:
        return _seconds(obj.active_max_duration)


class RoleSerializer(serializers.ModelSerializer):
    settings = RoleSettingsSummarySerializer(read_only=True)

    class Meta:
        model = Role
        fields = ["id", "name", "description", "kind", "template_id", "tier", "privileged", "settings"]


class _AssignmentSerializer(serializers.ModelSerializer):
    role = RoleSummarySerializer(read_only=True)
    via = serializers.SerializerMethodField(help_text="'direct', or the name of the group it comes through")

    def get_via(self, obj) -> str:
        return obj.group.name if obj.group_id else "direct"


class EligibilitySerializer(_AssignmentSerializer):
    class Meta:
        model = EligibleAssignment
        fields = ["id", "role", "scope", "starts_at", "ends_at", "via"]


class ActiveAssignmentSerializer(_AssignmentSerializer):
    activation_request = serializers.SerializerMethodField()

    class Meta:
        model = ActiveAssignment
        fields = ["id", "role", "scope", "starts_at", "ends_at", "origin", "via", "activation_request"]

    def get_activation_request(self, obj) -> str | None:
        request = getattr(obj, "activation_request", None)
        return str(request.pk) if request is not None else None


class ChangeRequestInputSerializer(StrictInputSerializer):
    """Extension (or renewal) of one of the caller's eligibilities or direct active assignments."""

    duration = DurationField(help_text="How much longer the assignment should last.")
    justification = TextField(required=True)


# --- Activation requests ---------------------------------------------------------------------


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = Approval
        fields = ["approver", "decision", "reason", "decided_at"]


class ActivationRequestSerializer(serializers.ModelSerializer):
    role = RoleSummarySerializer(read_only=True)
    requester = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True, allow_null=True)
    duration = serializers.SerializerMethodField(help_text="seconds")
    requested_duration = serializers.SerializerMethodField(
        help_text="seconds asked for, when a decision capped the duration to the role's maximum "
        "at the time; null: granted as asked"
    )
    approvers = serializers.SerializerMethodField(help_text="usernames of the people who may decide")
    approvals = ApprovalSerializer(many=True, read_only=True)

    class Meta:
        model = ActivationRequest
        fields = [
            "id",
            "kind",
            "status",
            "requester",
            "role",
            "scope",
            "eligible",
            "starts_at",
            "duration",
            "requested_duration",
            "justification",
            "ticket_number",
            "ticket_system",
            "created_at",
            "approvals_required",
            "decide_by",
            "approvers",
            "approvals",
            "decided_at",
            "decided_by",
            "decision_reason",
            "granted_at",
            "ends_at",
            "closed_at",
            "active_assignment",
        ]
        read_only_fields = fields

    def get_duration(self, obj) -> int:
        return _seconds(obj.duration)

    def get_requested_duration(self, obj) -> int | None:
        return _seconds(obj.requested_duration)

    def get_approvers(self, obj) -> list[str]:
        return sorted(approver.user.username for approver in obj.approvers.all())


class ActivationCreateSerializer(StrictInputSerializer):
    echo = tuple(ActivationRequestSerializer.Meta.fields)  # read-only: ignored if sent

    eligible = serializers.UUIDField(help_text="The id of one of your eligibilities (me/eligibilities).")
    duration = DurationField()
    justification = TextField()
    ticket_number = TextField()
    ticket_system = TextField()
    # Checked by the service (roles.scopes.scope_validate), which knows the role's kind.
    scope = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_SCOPE_LENGTH,
        help_text="Where to activate: the eligibility's scope (the default) or one below it.",
    )
    starts_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="A scheduled start (at most 30 days ahead); now if absent."
    )
    otp_code = OtpCodeField()


class DecisionInputSerializer(StrictInputSerializer):
    decision = serializers.ChoiceField(choices=Approval.Decision.choices)
    reason = TextField(help_text="Required to deny.")
    otp_code = OtpCodeField()


class BulkDecisionInputSerializer(StrictInputSerializer):
    requests = serializers.ListField(
        child=serializers.UUIDField(),
        min_length=1,
        max_length=MAX_BULK_DECISIONS,
        help_text="Ids of requests waiting for your decision: all are decided, or none.",
    )
    decision = serializers.ChoiceField(choices=Approval.Decision.choices)
    reason = TextField(help_text="One reason for all of them; required to deny.")
    otp_code = OtpCodeField()


class BulkDecisionSerializer(serializers.Serializer):
    requests = ActivationRequestSerializer(many=True, read_only=True)


class ApprovalFilterSerializer(StrictInputSerializer):
    """The inbox's filters (query parameters)."""

    role = serializers.UUIDField(required=False, help_text="Only requests for this role (its id).")
    requester = serializers.CharField(
        required=False, max_length=150, help_text="Only requests by this person (username)."
    )
    older_than_hours = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=24 * 365,
        help_text="Only requests waiting at least this many hours.",
    )


class StepUpInputSerializer(StrictInputSerializer):
    """Actions with nothing to say (cancel, deactivate): an empty object."""


# --- Access reviews --------------------------------------------------------------------------


class ReviewItemSerializer(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", read_only=True, help_text="The review run.")
    review = serializers.CharField(source="instance.definition.name", read_only=True)
    review_ends_at = serializers.DateTimeField(
        source="instance.ends_at", read_only=True, help_text="Decisions can be changed until then."
    )
    principal = serializers.CharField(source="principal_label", read_only=True)
    role = RoleSummarySerializer(read_only=True)
    # Text, not a second enum of the decision's choices (drf-spectacular would name it twice).
    recommendation = serializers.CharField(read_only=True, help_text="approve or deny; empty: none.")
    decision = serializers.ChoiceField(
        choices=ReviewItem.Decision.choices,
        allow_blank=True,
        read_only=True,
        help_text="approve, deny or dont_know; empty: not decided yet.",
    )
    decided_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "instance",
            "review",
            "review_ends_at",
            "principal",
            "assignment_type",
            "role",
            "scope",
            "last_activation_at",
            "last_sign_in_at",
            "last_sign_in_source",
            "recommendation",
            "recommendation_reason",
            "decision",
            "justification",
            "decided_by",
            "decided_at",
        ]
        read_only_fields = fields


class ReviewItemFilterSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=list(DECISION_FILTERS), required=False)
    review = serializers.UUIDField(required=False, help_text="Only the items of this review run.")


class ReviewDecisionInputSerializer(StrictInputSerializer):
    echo = tuple(ReviewItemSerializer.Meta.fields)  # read-only: ignored if sent

    decision = serializers.ChoiceField(choices=ReviewItem.Decision.choices)
    justification = TextField(help_text="Required when the review asks for one.")


class ReviewBulkDecisionInputSerializer(StrictInputSerializer):
    items = serializers.ListField(
        child=serializers.UUIDField(),
        min_length=1,
        max_length=MAX_BULK_ITEMS,
        help_text="Ids of review items assigned to you: all are decided, or none.",
    )
    decision = serializers.ChoiceField(choices=ReviewItem.Decision.choices)
    justification = TextField(help_text="Required when the review asks for one.")


class ReviewBulkDecisionSerializer(serializers.Serializer):
    items = ReviewItemSerializer(many=True, read_only=True)


# --- Audit -----------------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "seq",
            "occurred_at",
            "actor",
            "actor_label",
            "action",
            "outcome",
            "target_type",
            "target_id",
            "target_label",
            "role_id",
            "role_label",
            "scope",
            "details",
            "request_id",
            "ip",
            "user_agent",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class AuditExportFormatSerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=["csv", "jsonl"],
        help_text="csv: one row per event; jsonl: every hashed field with seq, prev_hash and hash, "
        "then the signed checkpoints in the range (for the offline verifier).",
    )


# --- Alerts ----------------------------------------------------------------------------------


class AlertItemSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="What the item is: role, eligible_assignment, audit_event, …")
    id = serializers.CharField(help_text="The item's id within its type.")
    # (DRF's metaclass takes declared fields off the class: this is the item's field, not Field.label)
    label = serializers.CharField()  # type: ignore[assignment]


class AlertSerializer(serializers.ModelSerializer):
    title = serializers.CharField(read_only=True, help_text="The alert kind's title.")
    items = AlertItemSerializer(many=True, read_only=True, help_text="What the alert is about.")
    reason = serializers.CharField(read_only=True, help_text="Why the alert is raised.")
    dismissed_by = serializers.SlugRelatedField[User](
        slug_field="username", read_only=True, allow_null=True, help_text="Who dismissed it (username)."
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "key",
            "title",
            "severity",
            "status",
            "items",
            "reason",
            "first_raised_at",
            "last_evaluated_at",
            "dismissed_by",
            "dismissed_at",
            "dismiss_reason",
            "resolved_at",
        ]
        read_only_fields = fields


class AlertFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Alert.Status.choices, required=False, default=Alert.Status.OPEN, help_text="open unless told."
    )
    severity = serializers.ChoiceField(choices=Alert.Severity.choices, required=False)


class AlertDismissInputSerializer(StrictInputSerializer):
    reason = TextField(help_text="Why the alert is dismissed (required).")
    otp_code = OtpCodeField()


# --- The authorization check -----------------------------------------------------------------


GROUP_REFERENCE = (
    r"^(?:[0-9]{1,18}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)


class CheckQuerySerializer(serializers.Serializer):
    # RegexField only to tell the schema what trimming already enforces: not blank or all spaces.
    user = serializers.RegexField(r"\S", max_length=150, help_text="The username.")
    role = serializers.RegexField(
        r"\S",
        max_length=64,
        required=False,
        help_text="The role's id or its template id. Give either role or group.",
    )
    group = serializers.RegexField(
        GROUP_REFERENCE,
        required=False,
        help_text="PIM for Groups: the governed group, by its portal id or its Entra object id. "
        "Give either role or group.",
        error_messages={"invalid": "Give the group's portal id (digits) or its Entra object id (a GUID)."},
    )
    access = serializers.ChoiceField(
        choices=["member", "owner"],
        required=False,
        help_text="With group: membership (member, the default) or ownership (owner) of the group.",
    )
    scope = ScopeField(
        required=False,
        default="/",
        help_text="/ (the default) or a path such as /apps/payroll; no ., .. or empty segments, no final /. "
        "A group question is about the group as a whole: / only.",
    )

    def validate(self, attrs):
        if ("role" in attrs) == ("group" in attrs):
            raise serializers.ValidationError({"role": "Give either role or group (with access)."})
        if "group" not in attrs:
            if "access" in attrs:
                raise serializers.ValidationError({"access": "access goes with group."})
            return attrs
        if attrs["scope"] != "/":
            raise serializers.ValidationError({"scope": "A group's access applies to the group: scope is /."})
        attrs.setdefault("access", "member")
        return attrs


class CheckSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    until = serializers.DateTimeField(
        allow_null=True, help_text="When the access ends (UTC); null: permanent, or not active."
    )
    assignment = serializers.UUIDField(allow_null=True, help_text="The active assignment that grants it.")


class CheckAnswerSerializer(CheckSerializer):
    """The check's answer as the schema states it: a role question's, or a group question's
    with group, access and basis too (one schema: a role answer is a group answer without
    them, so oneOf of the two could not tell them apart)."""

    group = serializers.CharField(required=False, help_text="Group questions only: the group, as asked.")
    access = serializers.ChoiceField(
        choices=["member", "owner"], required=False, help_text="Group questions only: the access asked about."
    )
    basis = serializers.ChoiceField(
        choices=["pim_assignment"],
        required=False,
        help_text="Group questions only: what the answer rests on. pim_assignment: an active assignment "
        "of the group's member (or owner) role in the portal, held by the person or through a group they "
        "are in; membership the group has outside PIM is not counted.",
    )


class GroupCheckSerializer(CheckSerializer):
    """The answer to a group question (PIM for Groups): the fields say what was asked and what
    answered it."""

    group = serializers.CharField(help_text="The group, as asked (portal id or Entra object id).")
    access = serializers.ChoiceField(choices=["member", "owner"], help_text="The access asked about.")
    basis = serializers.ChoiceField(
        choices=["pim_assignment"],
        help_text="What the answer rests on: pim_assignment, an active assignment of the group's member "
        "(or owner) role in the portal, held by the person or through a group they are in. Membership "
        "the group has outside PIM is not counted.",
    )


# --- The step-up window ----------------------------------------------------------------------


class StepUpOpenInputSerializer(StrictInputSerializer):
    otp_code = OtpCodeField(
        help_text="A fresh code from your authenticator app (or a recovery code). Each code works once."
    )
    passkey = serializers.JSONField(
        required=False,
        help_text="A passkey assertion: the PublicKeyCredential that `navigator.credentials.get()` "
        "returned for the options of POST /api/v1/step-up/passkey-options/, as JSON (its `toJSON()`). "
        "The only step-up a phishing-resistant role accepts.",
    )

    def validate(self, attrs):
        if bool(attrs.get("otp_code")) == bool(attrs.get("passkey")):
            raise serializers.ValidationError("Send either otp_code or passkey.")
        return attrs


class StepUpWindowSerializer(serializers.Serializer):
    open = serializers.BooleanField(help_text="Whether the window is open now.")
    factor = serializers.ChoiceField(
        choices=["totp", "recovery_code", "passkey"],
        allow_null=True,
        help_text="What opened it: a passkey's window also satisfies roles whose authentication "
        "strength is phishing-resistant; a code's does not.",
    )
    opened_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Opened at + PIM_STEP_UP_WINDOW_SECONDS: then a new step-up is needed."
    )


class PasskeyOptionsSerializer(serializers.Serializer):
    publicKey = serializers.DictField(  # noqa: N815 - WebAuthn's own name
        help_text="PublicKeyCredentialRequestOptions as JSON (binary values base64url): pass them to "
        "`navigator.credentials.get({publicKey})` (or `PublicKeyCredential.parseRequestOptionsFromJSON`)."
    )
