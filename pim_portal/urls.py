from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="activations:my_roles", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("roles/", include("roles.urls")),
    path("", include("activations.urls")),  # /roles/ (My roles) and /activations/...
    path("audit/", include("audit.urls")),
    path("reviews/", include("reviews.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
]
