from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from activations.urls import evidence_urlpatterns

from .favicon import favicon

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="activations:my_roles", permanent=False)),
    # Browsers ask for /favicon.ico where a page names no icon (a PDF, a JSON answer).
    path("favicon.ico", favicon),
    path("accounts/", include("accounts.urls")),
    path("manage/people/", include("accounts.people_urls")),
    path("roles/", include("roles.urls")),
    path("manage/roles/", include("roles.urls_manage")),
    path("", include("activations.urls")),  # /roles/ (My roles) and /activations/...
    path("audit/", include("audit.urls")),
    path("audit/", include("alerts.urls")),
    path("audit/activations/", include((evidence_urlpatterns, "evidence"))),
    path("reviews/", include("reviews.urls")),
    path("integrations/", include("integrations.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
]

if settings.DEBUG:
    # Development only: the emails the portal queued, readable (README "Development emails").
    urlpatterns.append(path("dev/emails/", include("notifications.urls")))
