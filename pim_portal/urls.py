from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from activations.urls import evidence_urlpatterns

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="activations:my_roles", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("roles/", include("roles.urls")),
    path("", include("activations.urls")),  # /roles/ (My roles) and /activations/...
    path("audit/", include("audit.urls")),
    path("audit/", include("alerts.urls")),
    path("audit/activations/", include((evidence_urlpatterns, "evidence"))),
    path("reviews/", include("reviews.urls")),
    path("integrations/", include("integrations.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
]
