from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("webhooks/", views.webhook_list, name="webhook_list"),
    path("webhooks/new/", views.webhook_create, name="webhook_create"),
    path("webhooks/<uuid:pk>/", views.webhook_detail, name="webhook_detail"),
    path("webhooks/<uuid:pk>/edit/", views.webhook_edit, name="webhook_edit"),
    path("webhooks/<uuid:pk>/<str:action>/", views.webhook_action, name="webhook_action"),
]
