"""OpenAPI details drf-spectacular cannot infer: the error shape on every operation, that the
input serializers refuse fields they do not know, and what the filters' forms refuse."""

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from .serializers import StrictInputSerializer


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, not_authenticated, permission_denied, not_found, …")
    message = serializers.CharField()
    # (DRF's metaclass takes declared fields off the class: this is the error's field, not .fields)
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text=(
            "Messages per input field (validation errors); for a call about several requests "
            "refused all or nothing, `requests` names each one (`<id>: why`)."
        ),
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_ERRORS = {
    "400": "The input is not valid: see error.fields.",
    "401": "No credentials, or a token that is invalid, expired or revoked.",
    "403": "Signed in, but not allowed to do this (or a session request without its CSRF token).",
    "404": "No such object, or not one the caller may see.",
    "409": "The object's current state does not allow it (already decided, already ended).",
    "429": "Too many attempts: wait and try again (Retry-After).",
}
_FOR_WRITES = {"409", "429"}
NO_NUL_PATTERN = r"^[^\x00]*$"


class PortalAutoSchema(AutoSchema):
    """Documents the one error shape for each status an operation can answer with."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status, description in _ERRORS.items():
            if status in responses or (status in _FOR_WRITES and self.method == "GET"):
                continue
            error = OpenApiResponse(response=ErrorSerializer, description=description)
            responses[status] = self._get_response_for_code(error, status, direction=direction)
        return responses

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(force_instance(serializer), StrictInputSerializer):
            schema["additionalProperties"] = False  # an unknown field is a 400 (echoes aside)
        return schema


class FilteredDownloadSchema(PortalAutoSchema):
    """A download (not a list) that takes a list's filters: its filter backends are documented
    all the same (drf-spectacular documents them for list views only)."""

    def get_filter_backends(self):
        return getattr(self.view, "filter_backends", [])


class CheckedFilterExtension(DjangoFilterExtension):
    """django-filter's query parameters as the forms behind them check them: free text is at
    most the field's max_length and holds no NUL character (both refused with a 400)."""

    target_class = "django_filters.rest_framework.DjangoFilterBackend"
    match_subclasses = True
    priority = 1  # over drf-spectacular's own

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        max_length = filter_field.extra.get("max_length")
        for parameter in parameters:
            schema = parameter["schema"]
            if schema.get("type") == "string" and not {"format", "enum"} & set(schema):
                schema["pattern"] = NO_NUL_PATTERN
                if max_length:
                    schema["maxLength"] = max_length
        return parameters
