from django.urls import path

from . import views

# Mounted under /audit/ (pim_portal.urls), where these pages have always been.
app_name = "alerts"
urlpatterns = [
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/evaluate/", views.alert_evaluate, name="alert_evaluate"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert_detail"),
    path("alerts/<int:pk>/dismiss/", views.alert_dismiss, name="alert_dismiss"),
    path("alerts/<int:pk>/fix/", views.alert_fix, name="alert_fix"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
