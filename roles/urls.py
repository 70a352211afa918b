from django.urls import path

from . import views, views_changes

app_name = "roles"
urlpatterns = [
    path("<uuid:pk>/", views.role_detail, name="role_detail"),
    path("changes/", views_changes.pending_change_list, name="pending_changes"),
    path("changes/<uuid:pk>/", views_changes.pending_change_detail, name="pending_change_detail"),
    path("changes/<uuid:pk>/decide/", views_changes.pending_change_decide, name="pending_change_decide"),
    path("changes/<uuid:pk>/cancel/", views_changes.pending_change_cancel, name="pending_change_cancel"),
]
