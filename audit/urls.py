from django.urls import path

from . import alerts_views, dashboard_views, views

app_name = "audit"
urlpatterns = [
    path("", views.event_list, name="event_list"),
    path("events/<int:seq>/", views.event_detail, name="event_detail"),
    path("export/", views.export, name="export"),
    path("activations/<uuid:pk>/", views.activation_evidence, name="activation_evidence"),
    path("alerts/", alerts_views.alert_list, name="alert_list"),
    path("alerts/evaluate/", alerts_views.alert_evaluate, name="alert_evaluate"),
    path("alerts/<int:pk>/", alerts_views.alert_detail, name="alert_detail"),
    path("alerts/<int:pk>/dismiss/", alerts_views.alert_dismiss, name="alert_dismiss"),
    path("alerts/<int:pk>/fix/", alerts_views.alert_fix, name="alert_fix"),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
]
