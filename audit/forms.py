"""The audit explorer's filter: what an auditor types, resolved to indexed columns.

Names (a username, a role's name) are resolved to ids here, one query each at most, so the
search itself compares ids and exact values on indexed columns.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django import forms
from django.db.models import Q

from accounts.models import User
from roles.models import Role

from .models import AuditEvent

SYSTEM = "system"
_DATE_ONLY = 10  # len("2026-05-31"): a day given without a time


@dataclass(frozen=True)
class EventFilter:
    """A resolved filter (see audit.selectors.event_search). ``params`` is the filter as the
    auditor typed it: what an export's audit event records and what page links carry."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    actor_id: int | None = None
    actor_is_system: bool = False
    principal_id: int | None = None
    target_id: str = ""
    role_id: uuid.UUID | None = None
    scope: str = ""
    scope_prefix: bool = False
    action: str = ""
    action_prefix: bool = False
    request_id: str = ""
    outcome: str = ""
    params: dict = field(default_factory=dict)


class EventFilterForm(forms.Form):
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"),
    )
    until = forms.DateTimeField(
        required=False,
        label="To (UTC)",
        help_text="A day alone counts to its end.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"),
    )
    actor = forms.CharField(required=False, max_length=150, help_text='A username, or "system".')
    principal = forms.CharField(
        required=False,
        max_length=150,
        label="Target principal",
        help_text="A username: events about the person, their requests and assignments.",
    )
    target = forms.CharField(required=False, max_length=64, label="Target id")
    role = forms.CharField(required=False, max_length=200, help_text="A role's name, id or template id.")
    scope = forms.CharField(required=False, max_length=400, help_text="Exact, or a prefix ending in *.")
    action = forms.CharField(
        required=False, max_length=64, help_text="Exact, or a prefix ending in . or * (activation.)."
    )
    request_id = forms.CharField(required=False, max_length=64, label="Request id")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any"), *AuditEvent.Outcome.choices])

    def clean_actor(self):
        value = self.cleaned_data["actor"].strip()
        if value and value != SYSTEM:
            self._user_id(value, "actor")
        return value

    def clean_principal(self):
        value = self.cleaned_data["principal"].strip()
        if value:
            self._user_id(value, "principal")
        return value

    def clean_role(self):
        value = self.cleaned_data["role"].strip()
        if not value:
            return value
        query = Q(name__iexact=value) | Q(template_id__iexact=value)
        try:
            query |= Q(pk=uuid.UUID(value))
        except ValueError:
            pass
        ids = list(Role.objects.filter(query).values_list("pk", flat=True)[:2])
        if not ids:
            raise forms.ValidationError("No role has this name, id or template id.")
        if len(ids) > 1:
            raise forms.ValidationError("Several roles match; give the role's id.")
        self._resolved["role"] = ids[0]
        return value

    def clean_until(self):
        value = self.cleaned_data["until"]
        if value is not None and len(str(self.data.get("until", "")).strip()) == _DATE_ONLY:
            value += timedelta(days=1)
        return value

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error("until", "The end must be after the start.")
        return data

    @property
    def _resolved(self) -> dict:
        if not hasattr(self, "_ids"):
            self._ids: dict = {}
        return self._ids

    def _user_id(self, username: str, name: str) -> None:
        user_id = User.objects.filter(username=username).values_list("pk", flat=True).first()
        if user_id is None:
            raise forms.ValidationError("No user has this username.")
        self._resolved[name] = user_id

    def criteria(self) -> EventFilter:
        """The resolved filter (call after is_valid())."""
        data, ids = self.cleaned_data, self._resolved
        scope, action = data["scope"].strip(), data["action"].strip()
        return EventFilter(
            since=data["since"],
            until=data["until"],
            actor_id=ids.get("actor"),
            actor_is_system=data["actor"] == SYSTEM,
            principal_id=ids.get("principal"),
            target_id=data["target"].strip(),
            role_id=ids.get("role"),
            scope=scope.removesuffix("*"),
            scope_prefix=scope.endswith("*"),
            action=action.removesuffix("*"),
            action_prefix=action.endswith(("*", ".")),
            request_id=data["request_id"].strip(),
            outcome=data["outcome"],
            params={
                name: str(value).strip() for name, value in self.data.items() if name in self.fields and value
            },
        )
