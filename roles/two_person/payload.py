"""What a pending change stores as JSON (its payload and its before), and reading it back."""

from datetime import datetime, timedelta

from django.utils.dateparse import parse_datetime

from accounts.models import DirectoryGroup, User

from .fields import LONGER

_DATETIME_FIELDS = ("starts_at", "ends_at")


def _to_json(value):
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _jsonable(values: dict) -> dict:
    return {key: _to_json(value) for key, value in values.items()}


def _from_json(field: str, value):
    if value is None:
        return None
    if field in _DATETIME_FIELDS:
        return parse_datetime(value)
    if field in LONGER:  # the durations
        return timedelta(seconds=value)
    return value


def _principal_key(principal) -> dict:
    return {"user": principal.pk} if isinstance(principal, User) else {"group": principal.pk}


def _principal(key: dict):
    if "user" in key:
        return User.objects.filter(pk=key["user"]).first()
    return DirectoryGroup.objects.filter(pk=key["group"]).first()


def _objects(model, ids):
    return None if ids is None else list(model.objects.filter(pk__in=ids))
