"""The development inbox (only routed with DJANGO_DEBUG: pim_portal.urls)."""

from django.urls import path

from . import views

app_name = "dev_emails"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:pk>/", views.email_detail, name="detail"),
]
