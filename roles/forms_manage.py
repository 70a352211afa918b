"""Forms of the administration pages (/manage/roles/): the role-settings editor and the
eligible and active assignment forms. They check the shape of the input and say in plain words
what to change; the services check everything again under their locks and have the last word.

The settings editor is built from services.SETTINGS_FIELDS: a setting added to the model and to
that list appears in the editor by itself (as Django's form field for the model field, labelled
from two_person.LABELS), in the section SECTIONS names for it, else under "Other settings".
Durations get DurationAmountField (a number and hours or days) with the range the service
allows; a new duration setting names its range in DURATION_RANGES.
"""

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import QueryDict
from django.urls import reverse_lazy
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from common.text import clean_text

from . import notification_matrix, services
from .models import RoleSettings
from .scopes import MAX_SCOPE_LENGTH
from .services.assignments import ticket_clean
from .two_person import LABELS

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UNITS = {"minutes": timedelta(minutes=1), "hours": HOUR, "days": DAY}


@dataclass(frozen=True)
class DurationRange:
    minimum: timedelta
    maximum: timedelta
    unit: str  # the unit the editor shows first

    @property
    def text(self) -> str:
        return f"between {duration_words(self.minimum)} and {duration_words(self.maximum)}"


# The ranges roles.services.role_settings checks (_validate_settings), said to the person first.
DURATION_RANGES = {
    "activation_max_duration": DurationRange(timedelta(minutes=30), timedelta(hours=24), "hours"),
    "approval_timeout": DurationRange(HOUR, timedelta(days=14), "hours"),
    "eligible_max_duration": DurationRange(
        settings.PIM_MIN_ASSIGNMENT_DURATION, timedelta(days=3650), "days"
    ),
    "active_max_duration": DurationRange(settings.PIM_MIN_ASSIGNMENT_DURATION, timedelta(days=3650), "days"),
}

# Where each setting shows in the editor; settings not named here go under "Other settings".
SECTIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "Activation",
        (
            "activation_max_duration",
            "require_mfa",
            "activation_authentication_strength",
            "require_justification",
            "require_ticket",
        ),
    ),
    (
        "Approval",
        (
            "require_approval",
            "approvals_required",
            "approval_timeout",
            "approval_authentication_strength",
            "approvers",
            "approver_groups",
        ),
    ),
    ("Eligible assignments", ("eligible_allow_permanent", "eligible_max_duration")),
    (
        "Active assignments",
        (
            "active_allow_permanent",
            "active_max_duration",
            "active_require_mfa",
            "active_require_justification",
        ),
    ),
    # Entra's notification matrix: a section per event, its three audiences' rules in it.
    *(
        (
            f"Notifications: {notification_matrix.EVENT_LABELS[event].lower()}",
            tuple(
                name
                for rule in notification_matrix.RULES
                if rule.event == event
                for name in (rule.default_field, rule.additional_field, rule.critical_field)
            ),
        )
        for event in notification_matrix.EVENTS
    ),
]
OTHER_SECTION = "Other settings"


def duration_words(duration: timedelta) -> str:
    """30 minutes, 8 hours, 24 hours, 2 days, 365 days, 1.5 hours."""
    for unit, size in (("day", DAY), ("hour", HOUR), ("minute", timedelta(minutes=1))):
        if duration > size and duration % size == timedelta(0) or duration == size != DAY:
            count = duration // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    hours = duration / HOUR
    return f"{hours:g} hours"


def _amount_in(duration: timedelta, unit: str) -> str:
    amount = Decimal(duration.total_seconds()) / Decimal(UNITS[unit].total_seconds())
    return f"{amount.quantize(Decimal('0.01')).normalize():f}"


def _unit_for(duration: timedelta, preferred: str) -> str:
    """The unit a stored duration reads best in: days if whole days (and days are offered),
    else hours if whole-ish hours, else minutes."""
    if preferred == "days" and duration % DAY == timedelta(0):
        return "days"
    if duration % timedelta(minutes=30) == timedelta(0):
        return "hours"
    return "minutes"


class DurationAmountWidget(forms.MultiWidget):
    def __init__(self, attrs=None):
        widgets = [
            forms.NumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal", "class": "amount"}),
            forms.Select(choices=[(unit, unit) for unit in UNITS], attrs={"class": "unit"}),
        ]
        super().__init__(widgets, attrs)

    preferred = "hours"

    def decompress(self, value):
        if isinstance(value, timedelta):
            unit = _unit_for(value, self.preferred)
            return [_amount_in(value, unit), unit]
        return [None, "hours"]


class DurationAmountField(forms.MultiValueField):
    """A duration typed as a number and a unit (minutes, hours or days), within a range that
    the help text states."""

    widget = DurationAmountWidget

    def __init__(self, *, duration_range: DurationRange, **kwargs):
        self.duration_range = duration_range
        fields = (forms.CharField(), forms.ChoiceField(choices=[(unit, unit) for unit in UNITS]))
        kwargs.setdefault("help_text", f"Allowed: {duration_range.text}.")
        kwargs.pop("max_length", None)
        super().__init__(fields, require_all_fields=True, **kwargs)
        self.widget.preferred = duration_range.unit
        # The pair has one visible label (on the amount's id): each part is named for assistive
        # technology too.
        label = str(kwargs.get("label") or "Duration")
        amount, unit = self.widget.widgets
        amount.attrs["aria-label"] = f"{label}: amount"
        unit.attrs["aria-label"] = f"{label}: unit"
        self.error_messages["required"] = "Enter a number and choose hours or days."
        self.error_messages["incomplete"] = "Enter a number and choose hours or days."

    def compress(self, data_list):
        if not data_list:
            return None
        amount_text, unit = data_list
        try:
            amount = Decimal(str(amount_text).strip().replace(",", "."))
        except InvalidOperation:
            raise ValidationError(f"“{amount_text}” is not a number: enter one such as 8 or 1.5.") from None
        if not amount.is_finite() or amount <= 0:
            raise ValidationError(f"Enter a duration {self.duration_range.text}.")
        try:
            seconds = int(amount * Decimal(UNITS[unit].total_seconds()))
            duration = timedelta(seconds=seconds)
        except (OverflowError, InvalidOperation, KeyError):
            raise ValidationError(f"Enter a duration {self.duration_range.text}.") from None
        if not self.duration_range.minimum <= duration <= self.duration_range.maximum:
            raise ValidationError(
                f"{duration_words(duration)} is out of range: enter a duration {self.duration_range.text}."
            )
        return duration


class PrincipalPickerWidget(forms.TextInput):
    """A text box that the search script (static/js/principal-search.js) fills suggestions for,
    as a <datalist>; without JavaScript one types the username, email or group name."""

    def __init__(self, *, kind: str, attrs=None):
        attrs = {
            "autocomplete": "off",
            "spellcheck": "false",
            "data-principal-search": kind,
            "data-search-url": reverse_lazy("manage_roles:principal_search"),
            "list": f"suggestions-{kind}",
            **(attrs or {}),
        }
        super().__init__(attrs)


def _lookup_person(text: str) -> list[User]:
    return list(
        User.objects.filter(Q(username__iexact=text) | Q(email__iexact=text), is_active=True).order_by("pk")[
            :2
        ]
    )


def _lookup_group(text: str) -> list[DirectoryGroup]:
    return list(DirectoryGroup.objects.filter(name__iexact=text).order_by("pk")[:2])


def _split_names(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


class RoleSettingsEditorForm(forms.Form):
    """A role's settings, as the portal's editor shows them. Built from SETTINGS_FIELDS."""

    approvers = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Approvers",
        help_text="Untick to remove.",
    )
    approvers_add = forms.CharField(
        label="Add approvers",
        required=False,
        max_length=1000,
        widget=PrincipalPickerWidget(kind="people"),
        help_text="Search by name; or type usernames or emails, separated by commas.",
    )
    approver_groups = forms.ModelMultipleChoiceField(
        queryset=DirectoryGroup.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Approver groups",
        help_text="Untick to remove.",
    )
    approver_groups_add = forms.CharField(
        label="Add approver groups",
        required=False,
        max_length=1000,
        widget=PrincipalPickerWidget(kind="groups"),
        help_text="Search by name; or type group names, separated by commas.",
    )

    def __init__(self, *args, role_settings: RoleSettings, **kwargs):
        self.role_settings = role_settings
        initial = {field: getattr(role_settings, field) for field in services.SETTINGS_FIELDS} | {
            "approvers": list(role_settings.approvers.all()),
            "approver_groups": list(role_settings.approver_groups.all()),
        }
        kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        model_fields = forms.fields_for_model(
            RoleSettings,
            fields=services.SETTINGS_FIELDS,
            labels=LABELS,
            formfield_callback=self._formfield,
        )
        ordered = dict(model_fields)
        ordered.update(self.fields)
        self.fields = ordered
        # Only the approvers chosen now are listed as boxes (the rest are found by searching).
        chosen_people = [user.pk for user in initial["approvers"]] + self._posted_pks("approvers")
        self.fields["approvers"].widget.choices = [
            (user.pk, f"{user} ({user.username})") for user in User.objects.filter(pk__in=chosen_people)
        ]
        chosen_groups = [group.pk for group in initial["approver_groups"]] + self._posted_pks(
            "approver_groups"
        )
        self.fields["approver_groups"].widget.choices = [
            (group.pk, group.name) for group in DirectoryGroup.objects.filter(pk__in=chosen_groups)
        ]
        if "approvals_required" in self.fields:
            self.fields["approvals_required"].help_text = "Allowed: 1 to 10."
            self.fields["approvals_required"].widget.attrs.update({"min": 1, "max": 10})
        for name in notification_matrix.ADDITIONAL_FIELDS:
            if name in self.fields:
                self.fields[name].help_text = "Email addresses, one per line."
                self.fields[name].widget.attrs["rows"] = 2

    @staticmethod
    def _formfield(model_field, **kwargs):
        if model_field.name in DURATION_RANGES:
            return DurationAmountField(
                duration_range=DURATION_RANGES[model_field.name], label=kwargs.get("label"), required=True
            )
        return model_field.formfield(**kwargs)

    def _posted_pks(self, name: str) -> list[int]:
        if not self.is_bound:
            return []
        values = self.data.getlist(name) if isinstance(self.data, QueryDict) else self.data.get(name, [])
        return [int(value) for value in values if str(value).isdigit()]

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The bound fields by section, every field once, the unnamed ones last."""
        placed: set[str] = {"approvers_add", "approver_groups_add"}
        result = []
        for title, names in SECTIONS:
            fields = [self[name] for name in names if name in self.fields]
            placed.update(names)
            if fields:
                result.append((title, fields))
        rest = [self[name] for name in self.fields if name not in placed]
        if rest:
            result.append((OTHER_SECTION, rest))
        return result

    def clean_approvers_add(self) -> list[User]:
        found, unknown = [], []
        for name in _split_names(self.cleaned_data["approvers_add"]):
            matches = _lookup_person(name)
            if len(matches) == 1:
                found.append(matches[0])
            else:
                unknown.append(name)
        if unknown:
            raise ValidationError(
                f"Nobody active is called {', '.join(unknown)}: type a username or email exactly, "
                "or pick from the suggestions."
            )
        return found

    def clean_approver_groups_add(self) -> list[DirectoryGroup]:
        found, unknown = [], []
        for name in _split_names(self.cleaned_data["approver_groups_add"]):
            matches = _lookup_group(name)
            if len(matches) == 1:
                found.append(matches[0])
            else:
                unknown.append(name)
        if unknown:
            raise ValidationError(f"There is no group called {', '.join(unknown)}: type its name exactly.")
        return found

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        approvers = _unique([*cleaned.get("approvers", []), *cleaned.get("approvers_add", [])])
        groups = _unique([*cleaned.get("approver_groups", []), *cleaned.get("approver_groups_add", [])])
        cleaned["approvers"], cleaned["approver_groups"] = approvers, groups
        for name in notification_matrix.ADDITIONAL_FIELDS:
            if name in cleaned:
                try:
                    text = clean_text(cleaned[name] or "", field=name)
                    cleaned[name] = notification_matrix.recipients_clean(text, field_name=name)
                except ValidationError as error:
                    self.add_error(name, error.messages)
                    return cleaned
        candidate = self.candidate()
        try:
            services.role_settings_validate(candidate, approvers=approvers, approver_groups=groups)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, messages in error.message_dict.items():
                    self.add_error(field if field in self.fields else None, messages)
            else:
                self.add_error(None, error.messages)
        return cleaned

    def candidate(self) -> RoleSettings:
        """The settings as they would be (a copy, never saved)."""
        candidate = copy.copy(self.role_settings)
        for field in services.SETTINGS_FIELDS:
            if field in self.cleaned_data:
                setattr(candidate, field, self.cleaned_data[field])
        return candidate

    def changes(self) -> dict[str, Any]:
        """The settings whose value differs from the stored one (for the service)."""
        return {
            field: self.cleaned_data[field]
            for field in services.SETTINGS_FIELDS
            if field in self.cleaned_data and self.cleaned_data[field] != getattr(self.role_settings, field)
        }

    def summary(self) -> list[tuple[str, str, str]]:
        """What changes, as (label, now, after) in words: the confirm step shows it."""
        rows = [
            (
                str(self.fields[field].label),
                _words(getattr(self.role_settings, field), self.fields[field]),
                _words(value, self.fields[field]),
            )
            for field, value in self.changes().items()
        ]
        for field, label in (("approvers", "Approvers"), ("approver_groups", "Approver groups")):
            before = set(getattr(self.role_settings, field).all())
            after = set(self.cleaned_data[field])
            if before != after:
                rows.append((label, _names(before), _names(after)))
        return rows


def _unique(objects: list) -> list:
    seen, result = set(), []
    for obj in objects:
        if obj.pk not in seen:
            seen.add(obj.pk)
            result.append(obj)
    return result


def _names(objects) -> str:
    return ", ".join(sorted(str(obj) for obj in objects)) or "none"


def _words(value: Any, field: forms.Field | None = None) -> str:
    choices = dict(getattr(field, "choices", None) or ())
    if value in choices:  # a choice: its label ("Any MFA"), not its stored value
        return str(choices[value])
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, timedelta):
        return duration_words(value)
    if value in ("", None):
        return "—"
    return " ".join(str(value).split())


TICKET_MAX_LENGTH = 100  # the assignments' ticket columns (as an activation's)


class AssignmentEditorForm(forms.Form):
    """A new eligible or active assignment: who, where, from when, until when, why."""

    END_DURATION, END_DATE, END_PERMANENT = "duration", "date", "permanent"

    principal = forms.CharField(
        label="User or group",
        max_length=300,
        widget=PrincipalPickerWidget(kind="principals"),
        help_text="Search by name; or type a username, email or group name (“group:Name” if both exist).",
        error_messages={"required": "Choose the user or group to assign."},
    )
    scope = forms.CharField(
        label="Scope",
        initial="/",
        max_length=MAX_SCOPE_LENGTH,
        help_text="“/” is the whole directory.",
        error_messages={"required": "Enter a scope; “/” is the whole directory."},
    )
    starts_at = forms.DateTimeField(
        label="Start (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to start now.",
        error_messages={"invalid": "Enter a date and time such as 2030-01-31 14:30 (UTC)."},
    )
    end = forms.ChoiceField(label="End", widget=forms.RadioSelect, initial=END_DURATION)
    duration = forms.DecimalField(
        label="Lasts",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        error_messages={
            "invalid": "Enter a number such as 30 or 1.5.",
            "min_value": "Enter a positive number.",
        },
    )
    duration_unit = forms.ChoiceField(
        label="Unit", choices=[("days", "days"), ("hours", "hours")], initial="days", required=False
    )
    ends_at = forms.DateTimeField(
        label="Ends at (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time such as 2030-01-31 14:30 (UTC)."},
    )
    justification = forms.CharField(
        label="Justification",
        required=False,
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the audit log.",
        error_messages={
            "max_length": f"The justification is at most {settings.PIM_MAX_TEXT_LENGTH} characters."
        },
    )

    ticket_system = forms.CharField(
        label="Ticket system",
        required=False,
        max_length=TICKET_MAX_LENGTH,
        error_messages={"max_length": f"The ticket system is at most {TICKET_MAX_LENGTH} characters."},
    )
    ticket_number = forms.CharField(
        label="Ticket number",
        required=False,
        max_length=TICKET_MAX_LENGTH,
        help_text="Optional: the change ticket behind it; sent to Entra with the assignment.",
        error_messages={"max_length": f"The ticket number is at most {TICKET_MAX_LENGTH} characters."},
    )

    def __init__(self, *args, kind: str, role_settings: RoleSettings, now: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.now = now or timezone.now()
        self.max_duration: timedelta = getattr(role_settings, f"{kind}_max_duration")
        self.allow_permanent: bool = getattr(role_settings, f"{kind}_allow_permanent")
        choices = [(self.END_DURATION, "After a duration"), (self.END_DATE, "On a date")]
        if self.allow_permanent:
            choices.append((self.END_PERMANENT, "Permanent (no end)"))
        cast(forms.ChoiceField, self.fields["end"]).choices = choices
        limit = f"At most {duration_words(self.max_duration)}"
        self.fields["duration"].help_text = f"{limit} (this role's settings)."
        self.fields["ends_at"].help_text = f"{limit} after the start."
        default_days = min(self.max_duration, timedelta(days=30))
        unit = "days" if default_days % DAY == timedelta(0) else "hours"
        self.fields["duration"].initial = _amount_in(default_days, unit)
        self.fields["duration_unit"].initial = unit
        if kind == "active" and role_settings.active_require_justification:
            self.fields["justification"].required = True
            self.fields["justification"].error_messages["required"] = (
                "This role's settings require a justification for active assignments."
            )

    def clean_principal(self) -> User | DirectoryGroup:
        text = self.cleaned_data["principal"].strip()
        prefix, _, rest = text.partition(":")
        if prefix.lower() in ("group", "user") and rest.strip():
            people = _lookup_person(rest.strip()) if prefix.lower() == "user" else []
            groups = _lookup_group(rest.strip()) if prefix.lower() == "group" else []
        else:
            people, groups = _lookup_person(text), _lookup_group(text)
        found = people + groups
        if len(found) == 1:
            return found[0]
        if not found:
            raise ValidationError(
                f"Nobody active and no group is called “{text}”: type a username, email or group name "
                "exactly, or pick from the suggestions."
            )
        raise ValidationError(f"“{text}” names several: write user:{text} or group:{text}.")

    def clean_justification(self) -> str:
        field = self.fields["justification"]
        try:
            return clean_text(
                self.cleaned_data["justification"], field="justification", required=field.required
            )
        except ValidationError as error:
            raise ValidationError(error.messages) from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if "ticket_number" in cleaned and "ticket_system" in cleaned:
            try:
                cleaned["ticket_number"], cleaned["ticket_system"] = ticket_clean(
                    cleaned["ticket_number"], cleaned["ticket_system"]
                )
            except ValidationError as error:
                for name, messages in error.message_dict.items():
                    self.add_error(name, messages)
        starts_at = cleaned.get("starts_at")
        start = starts_at or self.now
        end = cleaned.get("end")
        if end == self.END_DURATION:
            amount = cleaned.get("duration")
            if amount is None:
                if "duration" not in self.errors:
                    self.add_error("duration", "Enter how long the assignment lasts, such as 30 days.")
                return cleaned
            unit = cleaned.get("duration_unit") or "days"
            try:
                length = timedelta(seconds=int(amount * Decimal(UNITS[unit].total_seconds())))
            except OverflowError:
                self.add_error(
                    "duration", f"That is far too long: at most {duration_words(self.max_duration)}."
                )
                return cleaned
            if length > self.max_duration:
                self.add_error(
                    "duration",
                    f"{duration_words(length)} is longer than this role allows: at most "
                    f"{duration_words(self.max_duration)}.",
                )
                return cleaned
            cleaned["ends_at"] = start + length
        elif end == self.END_DATE:
            if cleaned.get("ends_at") is None:
                if "ends_at" not in self.errors:
                    self.add_error("ends_at", "Enter the date and time the assignment ends (UTC).")
                return cleaned
        else:
            cleaned["ends_at"] = None
        return cleaned

    def error_field_for(self, service_field: str) -> str | None:
        """Where a service's refusal about a field goes on this form."""
        if service_field == "ends_at":
            return "duration" if self.cleaned_data.get("end") == self.END_DURATION else "ends_at"
        return service_field if service_field in self.fields else None
