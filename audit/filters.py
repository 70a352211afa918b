"""The audit log's search: one django-filter FilterSet for the explorer (audit.views) and the
API (api.views: audit-events/ and its export).

What an auditor types is resolved by the form first: names (a username, a role's name) to ids,
one query each at most, so the search itself compares ids and exact values on indexed columns.
"""

import uuid
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from . import registry
from .models import AuditEvent
from .selectors import about_principal

SYSTEM = "system"
NO_SUCH_USER = 0  # no user has this id: an unknown username matches no event
_DATE_ONLY = 10  # len("2026-05-31"): a day given without a time
OUT_OF_RANGE = "This date and time is out of range."
# In a query these are a date-time, an id and a choice: sent blank, they are not one.
_TYPED = ("since", "until", "role", "outcome")


def _moment_input():
    return forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S")


class AuditEventFilterForm(forms.Form):
    """Checks what was sent and resolves names to ids (the filters then compare ids).

    ``query`` (set from the FilterSet) says how to read it. False, the explorer: a person typed
    it into a form, so a blank field is not set, and a name that finds nobody or a range that
    ends before it starts is explained. True, the API: a date-time, role or outcome sent blank
    is refused, a role is given by its id, and a query about an unknown username, a
    role id or an empty range matches no event."""

    query = False

    def clean_actor(self):
        value = self.cleaned_data["actor"]
        return self._user_id(value) if value and value != SYSTEM else value

    def clean_principal(self):
        value = self.cleaned_data["principal"]
        return self._user_id(value) if value else value

    def clean_role(self):
        value = self.cleaned_data["role"]
        if not value:
            return value
        if self.query:
            role_id = _uuid(value)
            if role_id is None:
                raise forms.ValidationError("Must be a valid UUID.")
            return role_id
        ids = registry.role_ids_find(text=value, limit=2)
        if not ids:
            raise forms.ValidationError("No role has this name, id or template id.")
        if len(ids) > 1:
            raise forms.ValidationError("Several roles match; give the role's id.")
        return ids[0]

    def clean_since(self):
        return self._moment("since")

    def clean_until(self):
        value = self._moment("until")
        if value is not None and len(str(self.data.get("until", "")).strip()) == _DATE_ONLY:
            try:
                value += timedelta(days=1)
            except OverflowError:
                raise forms.ValidationError(OUT_OF_RANGE) from None
        return value

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since and not self.query:
            self.add_error("until", "The end must be after the start.")
        if self.query:
            for name in _TYPED:
                if name in self.data and not str(self.data[name]).strip() and name not in self.errors:
                    self.add_error(name, "This field may not be blank.")
        return data

    def _moment(self, name: str) -> datetime | None:
        """The field's date and time in UTC, as the database compares it. A moment too close to
        the ends of the calendar to be stored there is refused rather than sent on."""
        value = self.cleaned_data[name]
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(OUT_OF_RANGE) from None

    def _user_id(self, username: str) -> int:
        user_id = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
        if user_id is not None:
            return user_id
        if self.query:
            return NO_SUCH_USER
        raise forms.ValidationError("No user has this username.")


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _exact_or_prefix(events: QuerySet, field: str, value: str, *, prefix_ends: tuple[str, ...]) -> QuerySet:
    """``value`` exactly, or as a prefix when it ends in one of ``prefix_ends`` (a final * is
    dropped, a final . kept)."""
    text = value.removesuffix("*")
    if not text:
        return events
    return events.filter(**{f"{field}__startswith" if value.endswith(prefix_ends) else field: text})


class AuditEventFilterSet(django_filters.FilterSet):
    """Every filter ANDed; empty ones are ignored. ``params`` is the filter as typed: what an
    export's audit event records."""

    since = django_filters.DateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", label="From (UTC)", widget=_moment_input()
    )
    until = django_filters.DateTimeFilter(
        field_name="occurred_at",
        lookup_expr="lt",
        label="To (UTC)",
        help_text="A day alone counts to its end.",
        widget=_moment_input(),
    )
    actor = django_filters.CharFilter(
        method="filter_actor", label="Actor", max_length=150, help_text='A username, or "system".'
    )
    principal = django_filters.CharFilter(
        method="filter_principal",
        label="Target principal",
        max_length=150,
        help_text="A username: events about the person, their requests and assignments.",
    )
    target = django_filters.CharFilter(field_name="target_id", label="Target id", max_length=64)
    role = django_filters.CharFilter(
        method="filter_role", label="Role", max_length=200, help_text="A role's name, id or template id."
    )
    scope = django_filters.CharFilter(
        method="filter_scope", label="Scope", max_length=400, help_text="Exact, or a prefix ending in *."
    )
    action = django_filters.CharFilter(
        method="filter_action",
        label="Action",
        max_length=64,
        help_text="Exact, or a prefix ending in . or * (activation.).",
    )
    request_id = django_filters.CharFilter(field_name="request_id", label="Request id", max_length=64)
    outcome = django_filters.ChoiceFilter(
        label="Outcome", choices=AuditEvent.Outcome.choices, empty_label="Any"
    )

    # How to read what was sent: what a person typed (the explorer) or a query (the API's
    # subclass, api.filters). See AuditEventFilterForm.
    query = False

    class Meta:
        model = AuditEvent
        fields: list[str] = []  # only the filters declared above
        form = AuditEventFilterForm

    def get_form_class(self):
        form_class = super().get_form_class()
        form_class.query = self.query
        return form_class

    @property
    def params(self) -> dict:
        return {
            name: str(value).strip() for name, value in self.data.items() if name in self.filters and value
        }

    # The values are what the form resolved (a user's id, a role's id); they are left without
    # type hints so that the API's schema documents the text that is typed, not the id.
    def filter_actor(self, events: QuerySet, name: str, value) -> QuerySet:
        return events.filter(actor__isnull=True) if value == SYSTEM else events.filter(actor_id=value)

    def filter_principal(self, events: QuerySet, name: str, value) -> QuerySet:
        return events.filter(about_principal(value))

    def filter_role(self, events: QuerySet, name: str, value) -> QuerySet:
        return events.filter(role_id=value)

    def filter_scope(self, events: QuerySet, name: str, value: str) -> QuerySet:
        return _exact_or_prefix(events, "scope", value, prefix_ends=("*",))

    def filter_action(self, events: QuerySet, name: str, value: str) -> QuerySet:
        return _exact_or_prefix(events, "action", value, prefix_ends=("*", "."))
