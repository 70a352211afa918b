from django.urls import path

from . import people, sso, views, views_passkeys

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("verify/", views.verify, name="verify"),
    path("mfa/", views.mfa_devices, name="mfa_devices"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa_enrol"),
    path("time-zone/", views.time_zone, name="time_zone"),
    path("mfa/recovery-codes/", views.mfa_recovery_codes, name="mfa_recovery_codes"),
    path("sso/start/", sso.SsoStartView.as_view(), name="sso_start"),
    path("sso/callback/", sso.SsoCallbackView.as_view(), name="sso_callback"),
    path("invitation/<str:kind>/<uidb64>/<token>/", people.invitation_accept, name="invitation_accept"),
    path("mfa/passkeys/add/", views.passkey_add, name="passkey_add"),
    path(
        "mfa/passkeys/register/begin/", views_passkeys.passkey_register_begin, name="passkey_register_begin"
    ),
    path(
        "mfa/passkeys/register/complete/",
        views_passkeys.passkey_register_complete,
        name="passkey_register_complete",
    ),
    path("mfa/passkeys/verify/begin/", views_passkeys.passkey_verify_begin, name="passkey_verify_begin"),
    path(
        "mfa/passkeys/verify/complete/",
        views_passkeys.passkey_verify_complete,
        name="passkey_verify_complete",
    ),
]
