"""Forms of the reviews pages: they parse and validate input; the services decide."""

import re
import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.models import User
from roles.models import Role

from .models import ReviewDefinition, ReviewItem

MAX_BULK_ITEMS = 500  # one page of My reviews is at most this many items
_USERNAME_SPLIT = re.compile(r"[\s,;]+")


class UsernamesField(forms.CharField):
    """Users named by username (one per line, or separated by commas): active accounts only."""

    widget: forms.Widget | type[forms.Widget] = forms.Textarea(attrs={"rows": 3})

    def clean(self, value):
        text = super().clean(value)
        names = list(dict.fromkeys(name for name in _USERNAME_SPLIT.split(text or "") if name))
        if len(names) > 100:
            raise ValidationError("Name at most 100 reviewers.")
        users = {user.username: user for user in User.objects.filter(username__in=names, is_active=True)}
        unknown = [name for name in names if name not in users]
        if unknown:
            raise ValidationError(f"No active user named {', '.join(unknown[:10])}.")
        return [users[name] for name in names]


class UsernameField(UsernamesField):
    widget = forms.TextInput

    def clean(self, value):
        users = super().clean(value)
        if len(users) > 1:
            raise ValidationError("Name one user.")
        return users[0] if users else None


class DateInput(forms.DateInput):
    input_type = "date"


class ReviewDefinitionForm(forms.Form):
    """Every setting of a review definition (SPEC 2.5), for review_definition_create/update."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    roles = forms.ModelMultipleChoiceField(
        queryset=Role.objects.order_by("name"),
        widget=forms.SelectMultiple(attrs={"size": 10}),
        help_text="Hold Ctrl (⌘ on a Mac) to choose several.",
    )
    review_eligible = forms.BooleanField(required=False, initial=True, label="Review eligible assignments")
    review_active = forms.BooleanField(
        required=False, label="Review active (direct) assignments", help_text="Activations end by themselves."
    )
    reviewer_type = forms.ChoiceField(
        choices=ReviewDefinition.Reviewers.choices,
        initial=ReviewDefinition.Reviewers.MANAGER,
        label="Reviewers",
    )
    named_reviewers = UsernamesField(
        required=False, help_text="Usernames, one per line (when the reviewers are named users)."
    )
    fallback_reviewer = UsernameField(
        required=False,
        help_text="Reviews items whose reviewer cannot be found (no manager, no owner). "
        "Empty: the PIM Administrators.",
    )
    recurrence = forms.ChoiceField(
        choices=ReviewDefinition.Recurrence.choices, initial=ReviewDefinition.Recurrence.QUARTERLY
    )
    start_date = forms.DateField(widget=DateInput, help_text="Runs start at 00:00 UTC on their day.")
    duration_days = forms.IntegerField(
        min_value=1,
        max_value=180,
        initial=14,
        label="Duration (days)",
        help_text="1 to 180 days, and no longer than the gap between two runs (7 days for a weekly review).",
    )
    end_date = forms.DateField(
        required=False,
        widget=DateInput,
        label="Series ends on",
        help_text="No run starts after this day. Empty: the review recurs until disabled.",
    )
    max_runs = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        label="Or ends after this many runs",
        help_text="An end date or a number of runs, not both.",
    )
    owners = UsernamesField(
        required=False,
        label="Owners",
        help_text="Usernames, one per line: emailed each run's report when it ends. "
        "Empty: whoever created the review.",
    )
    justification_required = forms.BooleanField(
        required=False, initial=True, label="Reviewers must justify their decisions"
    )
    reminders = forms.BooleanField(
        required=False, initial=True, label="Remind reviewers halfway through if they have not finished"
    )
    recommendations = forms.BooleanField(
        required=False, initial=True, label="Show recommendations (from real activation and sign-in history)"
    )
    inactivity_days = forms.IntegerField(
        min_value=1,
        max_value=365,
        initial=30,
        label="Inactivity window (days)",
        help_text="Recommend denial when the role was not used in this many days.",
    )
    default_decision = forms.ChoiceField(
        choices=ReviewDefinition.DefaultDecision.choices,
        initial=ReviewDefinition.DefaultDecision.NO_CHANGE,
        label="If reviewers don't respond",
    )
    auto_apply = forms.BooleanField(
        required=False, initial=True, label="Apply the results automatically at the end"
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled (start runs when due)")

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("review_eligible") or cleaned.get("review_active")):
            self.add_error("review_eligible", "Review eligible assignments, active assignments or both.")
        if cleaned.get("reviewer_type") == ReviewDefinition.Reviewers.NAMED and not cleaned.get(
            "named_reviewers"
        ):
            self.add_error("named_reviewers", "Name at least one reviewer.")
        return cleaned

    @classmethod
    def initial_from(cls, definition: ReviewDefinition) -> dict:
        initial = {name: getattr(definition, name) for name in cls.base_fields if hasattr(definition, name)}
        initial["roles"] = list(definition.roles.all())
        initial["named_reviewers"] = "\n".join(user.username for user in definition.named_reviewers.all())
        initial["owners"] = "\n".join(user.username for user in definition.owners.all())
        initial["fallback_reviewer"] = (
            definition.fallback_reviewer.username if definition.fallback_reviewer is not None else ""
        )
        return initial

    def service_arguments(self) -> dict:
        """cleaned_data as the keyword arguments of the services."""
        data = dict(self.cleaned_data)
        data["roles"] = list(data["roles"])
        return data

    def add_service_error(self, error: ValidationError) -> None:
        """Show a refusal from the service on its field (or above the form)."""
        if hasattr(error, "error_dict"):
            for field, errors in error.error_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        else:
            self.add_error(None, error)


class DecisionForm(forms.Form):
    """Approve or deny one item, with a justification."""

    decision = forms.ChoiceField(choices=ReviewItem.Decision.choices)
    justification = forms.CharField(required=False, max_length=settings.PIM_MAX_TEXT_LENGTH)

    def error_text(self) -> str:
        return " ".join(str(message) for errors in self.errors.values() for message in errors)


class UUIDListField(forms.Field):
    """Several ids from checkboxes of the same name."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Choose at least one item."}

    def to_python(self, value):
        if not value:
            return []
        if not isinstance(value, list | tuple) or len(value) > MAX_BULK_ITEMS:
            raise ValidationError(f"Choose at most {MAX_BULK_ITEMS} items at once.")
        try:
            return list(dict.fromkeys(uuid.UUID(str(v)) for v in value))
        except ValueError:
            raise ValidationError("Choose items from the list.") from None


class BulkDecisionForm(DecisionForm):
    """Approve or deny a selection of items with one justification."""

    items = UUIDListField()
