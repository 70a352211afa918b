"""Validation of free text people type (justifications, reasons, ticket numbers)."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

# Control characters other than tab and newlines have no business in a justification and can
# corrupt logs, emails and exports.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(
    value: str | None, *, field: str, required: bool = False, max_length: int | None = None
) -> str:
    value = (value or "").strip()
    max_length = max_length or settings.PIM_MAX_TEXT_LENGTH
    if required and not value:
        raise ValidationError({field: f"A {field.replace('_', ' ')} is required."})
    if len(value) > max_length:
        raise ValidationError({field: f"The {field.replace('_', ' ')} is at most {max_length} characters."})
    if _CONTROL.search(value):
        raise ValidationError({field: f"The {field.replace('_', ' ')} contains control characters."})
    return value
