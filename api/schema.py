"""OpenAPI details drf-spectacular cannot infer: the error shape on every operation, and that
the input serializers refuse fields they do not know."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from .serializers import StrictInputSerializer


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, not_authenticated, permission_denied, not_found, …")
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field (validation errors only).",
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
