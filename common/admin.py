"""The admin base for models that only services may change: a service's refusal
(ValidationError, or PermissionDenied past the admin's own check) becomes an error message on
the same page, and nothing changes."""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]  # ModelAdmin is generic only in django-stubs
else:
    _ModelAdmin = admin.ModelAdmin


class ServiceBackedAdmin(_ModelAdmin):
    """Turns service refusals into admin error messages (and no change)."""

    actions: Sequence[Callable[..., Any] | str] | None = (
        None  # no bulk delete: removals go one by one through the services
    )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            return self._refused(request, error)
        except PermissionDenied as error:
            if not self._admin_allows(request, object_id, self.has_change_permission):
                raise  # the admin's own check (e.g. an auditor posting): 403
            return self._refused(request, error)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as error:
            return self._refused(request, error)
        except PermissionDenied as error:
            if not self._admin_allows(request, object_id, self.has_delete_permission):
                raise
            return self._refused(request, error)

    def _admin_allows(
        self, request: HttpRequest, object_id: str | None, check: Callable[[HttpRequest, Any], bool]
    ) -> bool:
        """Whether the admin's own permission check lets the request through (so a
        PermissionDenied came from a service and is a refusal to show, not a 403)."""
        if object_id is None:
            return self.has_add_permission(request)
        return check(request, self.get_object(request, unquote(object_id)))

    def _refused(self, request: HttpRequest, error: ValidationError | PermissionDenied) -> HttpResponse:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        self.message_user(request, f"Refused: {text}", level=messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: Any) -> None:
        """Relations are saved by the services."""
