from django.urls import path

from . import views

app_name = "roles"
urlpatterns = [
    path("<uuid:pk>/", views.role_detail, name="role_detail"),
]
