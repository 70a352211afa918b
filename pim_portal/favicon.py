"""The few responses that belong to no app."""

from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe


@require_safe
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for where a page names no icon: the vendored SVG (the
    static name is looked up per request: with DEBUG off it is the hashed file's)."""
    return HttpResponseRedirect(static("favicon.svg"))
