from django.urls import path

from . import views

app_name = "activations"
urlpatterns = [
    path("requests/<uuid:pk>/", views.request_detail, name="request_detail"),
]
