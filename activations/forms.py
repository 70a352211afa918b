"""Forms of the activation pages. They check the shape of the input and give clear messages;
the services check it again, with the policy as it is at that moment, and have the last word."""

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
        label="Start (UTC, optional)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to start as soon as it is granted. The time is read as UTC.",
        error_messages={"invalid": "Enter a date and time such as 2030-01-31 14:30 (UTC)."},
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
        # The page says UTC: read the wall-clock time typed as UTC whatever the active zone.
        # Whether it is too early or too far ahead is the service's to say (activation_request).
        return timezone.make_naive(starts_at).replace(tzinfo=UTC)

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
