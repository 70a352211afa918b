from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("verify/", views.verify, name="verify"),
    path("mfa/", views.mfa_devices, name="mfa_devices"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa_enrol"),
    path("time-zone/", views.time_zone, name="time_zone"),
    path("mfa/recovery-codes/", views.mfa_recovery_codes, name="mfa_recovery_codes"),
]
