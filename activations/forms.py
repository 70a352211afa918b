"""Forms of the activation pages. They check the shape of the input and give clear messages;
the services check it again, with the policy as it is at that moment, and have the last word."""

import uuid
from datetime import UTC, timedelta
from typing import cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.services import MAX_CODE_INPUT, MfaError, mfa_code_normalize
from common.text import clean_text
from roles.models import EligibleAssignment, RoleSettings
from roles.scopes import MAX_SCOPE_LENGTH, scope_covers, scope_validate

from .selectors import InboxFilters
from .services import MAX_BULK_ITEMS

# Offered activation durations, in minutes: half hours up to two hours, then whole hours.
_SHORT_STEPS = (30, 60, 90, 120)
TICKET_MAX_LENGTH = 100


def duration_label(duration: timedelta) -> str:
    """8 hours, 1 hour 30 minutes, 90 days, 45 minutes."""
    seconds = int(duration.total_seconds())
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    hours, minutes = divmod(seconds // 60, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def duration_choices(max_duration: timedelta, available: timedelta | None = None) -> list[tuple[int, str]]:
    """Durations (minutes) up to the role's maximum and, when the eligibility ends sooner, up to
    the time it has left (that rest itself offered too, rounded down to 5 minutes)."""
    max_minutes = int(max_duration.total_seconds() // 60)
    minutes = {m for m in _SHORT_STEPS if m < max_minutes} | set(range(180, max_minutes, 60)) | {max_minutes}
    if available is not None:
        # A minute of slack: the form is submitted a little after it was shown.
        rest = int((available.total_seconds() - 60) // 300) * 5
        minutes = {m for m in minutes if m <= rest}
        if rest >= 5 and rest < max_minutes:
            minutes.add(rest)
    return [(m, duration_label(timedelta(minutes=m))) for m in sorted(minutes)]


def _clean_text_field(
    value: str, *, field: str, required: bool = False, max_length: int | None = None
) -> str:
    try:
        return clean_text(value, field=field, required=required, max_length=max_length)
    except ValidationError as error:
        raise forms.ValidationError(error.messages) from None


class CodeFieldMixin:
    """An authenticator code, required unless this session checked one within the step-up window
    (signing in a minute ago is a fresh MFA check; a TOTP code cannot be used twice)."""

    fields: dict[str, forms.Field]  # mixed into a Form

    def _add_code_field(self, *, required: bool) -> None:
        self.fields["otp_token"] = forms.CharField(
            label="Authenticator code",
            required=required,
            # Generous on purpose: mfa_code_normalize gives the clear message for oversized input.
            max_length=MAX_CODE_INPUT * 16,
            error_messages={
                "required": "Enter the 6-digit code from your authenticator app.",
                "max_length": "That is far too long to be a code.",
            },
            help_text=(
                "The 6-digit code your authenticator app shows."
                if required
                else "You confirmed with your authenticator a moment ago; a code is not needed now."
            ),
            widget=forms.TextInput(
                attrs={
                    "autocomplete": "one-time-code",
                    "inputmode": "numeric",
                    "spellcheck": "false",
                    "size": 12,
                }
            ),
        )

    def clean_otp_token(self):
        token = self.cleaned_data.get("otp_token", "")
        if token:
            try:
                mfa_code_normalize(token)
            except MfaError as error:
                raise forms.ValidationError(error.messages[0]) from None
        return token


class ActivateForm(CodeFieldMixin, forms.Form):
    """Activation of one eligibility: fields follow the role's settings."""

    duration = forms.TypedChoiceField(label="Duration", coerce=int)
    justification = forms.CharField(
        label="Justification",
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "A justification is required for this role.",
            "max_length": f"The justification is at most {settings.PIM_MAX_TEXT_LENGTH} characters.",
        },
    )
    starts_at = forms.DateTimeField(
        label="Start (optional)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to start as soon as it is granted. The time is read in your time zone.",
        error_messages={"invalid": "Enter a date and time such as 2030-01-31 14:30."},
    )
    scope = forms.CharField(
        label="Scope",
        required=False,
        max_length=MAX_SCOPE_LENGTH,
        error_messages={"max_length": f"A scope is at most {MAX_SCOPE_LENGTH} characters."},
    )

    def __init__(
        self,
        *args,
        eligible: EligibleAssignment,
        role_settings: RoleSettings,
        code_required: bool,
        now=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.eligible = eligible
        self.role_settings = role_settings
        self.now = now or timezone.now()
        available = eligible.ends_at - self.now if eligible.ends_at else None
        choices = duration_choices(role_settings.activation_max_duration, available)
        cast(forms.TypedChoiceField, self.fields["duration"]).choices = choices
        self.fields["duration"].initial = choices[-1][0] if choices else None
        self.fields["duration"].error_messages["invalid_choice"] = (
            f"Choose one of the offered durations (at most "
            f"{duration_label(role_settings.activation_max_duration)})."
        )
        self.fields["justification"].required = role_settings.require_justification
        self.fields["scope"].initial = eligible.scope
        self.fields["scope"].help_text = f"You are eligible at {eligible.scope}; you may narrow it."
        if role_settings.require_ticket:
            self.fields["ticket_system"] = forms.CharField(
                label="Ticket system", required=False, max_length=TICKET_MAX_LENGTH
            )
            self.fields["ticket_number"] = forms.CharField(
                label="Ticket number",
                max_length=TICKET_MAX_LENGTH,
                error_messages={"required": "A ticket number is required for this role."},
            )
        # A phishing-resistant role takes a passkey (the page's script asks for it before
        # submitting): no code field, a code would be refused anyway.
        if role_settings.require_mfa and not role_settings.activation_needs_passkey:
            self._add_code_field(required=code_required)

    @property
    def no_duration_left(self) -> bool:
        return not cast(forms.TypedChoiceField, self.fields["duration"]).choices

    def clean_justification(self):
        return _clean_text_field(
            self.cleaned_data["justification"],
            field="justification",
            required=self.role_settings.require_justification,
        )

    def clean_ticket_number(self):
        return _clean_text_field(
            self.cleaned_data["ticket_number"], field="ticket_number", max_length=TICKET_MAX_LENGTH
        )

    def clean_ticket_system(self):
        return _clean_text_field(
            self.cleaned_data["ticket_system"], field="ticket_system", max_length=TICKET_MAX_LENGTH
        )

    def clean_starts_at(self):
        starts_at = self.cleaned_data["starts_at"]
        if starts_at is None:
            return None
        # Read in the person's time zone (the active one, pim_portal.middleware.TimeZoneMiddleware)
        # and stored in UTC. Whether it is too early or too far ahead is the service's to say.
        return starts_at.astimezone(UTC)

    def clean_scope(self):
        scope = self.cleaned_data["scope"].strip() or self.eligible.scope
        if scope == self.eligible.scope:
            return scope
        try:
            scope_validate(scope, kind=self.eligible.role.kind)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        if not scope_covers(self.eligible.scope, scope):
            raise forms.ValidationError(
                f"You are eligible at {self.eligible.scope} only; choose that scope or one below it."
            )
        return scope

    def service_arguments(self) -> dict:
        """What activations.services.activation_request takes from the form."""
        data = self.cleaned_data
        return {
            "duration": timedelta(minutes=data["duration"]),
            "justification": data.get("justification", ""),
            "ticket_number": data.get("ticket_number", ""),
            "ticket_system": data.get("ticket_system", ""),
            "scope": data["scope"],
            "starts_at": data.get("starts_at"),
        }


class DecisionForm(CodeFieldMixin, forms.Form):
    """An approver's decision: approve or deny (with a reason), confirmed with a code."""

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("deny", "Deny")],
        widget=forms.HiddenInput,
        error_messages={
            "required": "Choose Approve or Deny.",
            "invalid_choice": "Choose Approve or Deny.",
        },
    )
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to deny; the requester will read it.",
        error_messages={"max_length": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."},
    )

    def __init__(self, *args, code_required: bool, passkey_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Approving a phishing-resistant role takes a passkey: no code field (see ActivateForm).
        if not passkey_required:
            self._add_code_field(required=code_required)

    def clean_reason(self):
        return _clean_text_field(self.cleaned_data["reason"], field="reason")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "deny" and "reason" in cleaned and not cleaned["reason"]:
            self.add_error("reason", "A reason is required to deny a request.")
        return cleaned


class RevokeForm(forms.Form):
    """An administrator ends someone's activation now."""

    reason = forms.CharField(
        label="Reason for revoking",
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={
            "required": "A reason is required to revoke an activation.",
            "max_length": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters.",
        },
    )

    def clean_reason(self):
        return _clean_text_field(self.cleaned_data["reason"], field="reason", required=True)


class EligibilityChangeForm(forms.Form):
    """An extension or renewal request: how many days, and why."""

    justification = forms.CharField(
        label="Justification",
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "A justification is required.",
            "max_length": f"The justification is at most {settings.PIM_MAX_TEXT_LENGTH} characters.",
        },
    )

    field_order = ["days", "justification"]

    def __init__(self, *args, max_days: int, **kwargs):
        super().__init__(*args, **kwargs)
        message = f"Choose between 1 and {max_days} days."
        self.fields["days"] = forms.IntegerField(
            label="Duration (days)",
            min_value=1,
            max_value=max_days,
            initial=min(90, max_days),
            help_text=f"Between 1 and {max_days} days.",
            error_messages={
                "min_value": message,
                "max_value": message,
                "invalid": message,
                "required": message,
            },
        )
        self.order_fields(self.field_order)

    def clean_justification(self):
        return _clean_text_field(self.cleaned_data["justification"], field="justification", required=True)


class ActivateSeveralForm(CodeFieldMixin, forms.Form):
    """Several eligibilities activated at once: a duration for each (its role's own choices),
    one justification, one ticket and one code. Which of them a role requires is the service's
    to say, role by role (a role refused does not stop the others)."""

    justification = forms.CharField(
        label="Justification",
        required=False,
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One justification for every role chosen.",
        error_messages={
            "max_length": f"The justification is at most {settings.PIM_MAX_TEXT_LENGTH} characters."
        },
    )
    ticket_system = forms.CharField(label="Ticket system", required=False, max_length=TICKET_MAX_LENGTH)
    ticket_number = forms.CharField(label="Ticket number", required=False, max_length=TICKET_MAX_LENGTH)

    def __init__(
        self, *args, eligibilities: list[EligibleAssignment], code_required: bool, now=None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.eligibilities = eligibilities
        now = now or timezone.now()
        self.rows = []
        for eligible in eligibilities:
            role_settings = eligible.role.settings
            available = eligible.ends_at - now if eligible.ends_at else None
            choices = duration_choices(role_settings.activation_max_duration, available)
            name = f"duration_{eligible.pk}"
            self.fields[name] = forms.TypedChoiceField(
                label=f"Duration for {eligible.role.name}",
                coerce=int,
                choices=choices,
                initial=choices[-1][0] if choices else None,
                error_messages={
                    "invalid_choice": f"Choose one of the offered durations for {eligible.role.name}.",
                    "required": f"Choose a duration for {eligible.role.name}.",
                },
            )
            self.rows.append((eligible, self[name]))
        needs_ticket = any(eligible.role.settings.require_ticket for eligible in eligibilities)
        self.fields["ticket_number"].help_text = (
            "Required by at least one of these roles." if needs_ticket else ""
        )
        if any(eligible.role.settings.require_mfa for eligible in eligibilities):
            self._add_code_field(required=code_required)

    def clean_justification(self):
        return _clean_text_field(self.cleaned_data["justification"], field="justification")

    def clean_ticket_number(self):
        return _clean_text_field(
            self.cleaned_data["ticket_number"], field="ticket_number", max_length=TICKET_MAX_LENGTH
        )

    def clean_ticket_system(self):
        return _clean_text_field(
            self.cleaned_data["ticket_system"], field="ticket_system", max_length=TICKET_MAX_LENGTH
        )

    def durations(self) -> list[tuple[EligibleAssignment, timedelta]]:
        return [
            (eligible, timedelta(minutes=self.cleaned_data[f"duration_{eligible.pk}"]))
            for eligible in self.eligibilities
        ]


class InboxFilterForm(forms.Form):
    """The approvals inbox narrowed to a role, a requester, or requests waiting a while."""

    AGES = (
        ("", "Any time"),
        ("1", "More than 1 hour"),
        ("4", "More than 4 hours"),
        ("24", "More than 1 day"),
        ("72", "More than 3 days"),
    )

    role = forms.ChoiceField(label="Role", required=False)
    requester = forms.ChoiceField(label="Requester", required=False)
    age = forms.ChoiceField(label="Waiting", required=False, choices=AGES)

    def __init__(self, *args, roles, requesters, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = [("", "All roles")] + [
            (str(role.pk), role.name) for role in roles
        ]
        cast(forms.ChoiceField, self.fields["requester"]).choices = [("", "Everyone")] + [
            (person.username, person.label) for person in requesters
        ]

    def filters(self):
        """activations.selectors.InboxFilters from the valid form (unknown values: no filter)."""
        data = self.cleaned_data if self.is_valid() else {}
        return InboxFilters(
            role=data.get("role") or None,
            requester=data.get("requester", ""),
            older_than=timedelta(hours=int(data["age"])) if data.get("age") else None,
        )


class UUIDListField(forms.Field):
    """Several ids (ticked boxes of one name)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        try:
            return list(dict.fromkeys(uuid.UUID(str(item)) for item in value))
        except ValueError:
            raise forms.ValidationError("Tick requests from the list.") from None


class BulkDecisionForm(CodeFieldMixin, forms.Form):
    """Approve or deny the requests ticked in the inbox: one reason, one code."""

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("deny", "Deny")],
        error_messages={"required": "Choose Approve or Deny.", "invalid_choice": "Choose Approve or Deny."},
    )
    requests = UUIDListField(error_messages={"required": "Tick at least one request."})
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to deny; each requester will read it.",
        error_messages={"max_length": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."},
    )

    def __init__(self, *args, code_required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_code_field(required=code_required)

    def clean_requests(self):
        pks = self.cleaned_data["requests"]
        if len(pks) > MAX_BULK_ITEMS:
            raise forms.ValidationError(f"Tick at most {MAX_BULK_ITEMS} requests at once.")
        return pks

    def clean_reason(self):
        return _clean_text_field(self.cleaned_data["reason"], field="reason")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "deny" and "reason" in cleaned and not cleaned["reason"]:
            self.add_error("reason", "A reason is required to deny requests.")
        return cleaned
