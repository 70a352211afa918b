from django.urls import path

from . import views

# Included at the site root: My roles keeps its address (/roles/, linked from emails).
app_name = "activations"
urlpatterns = [
    path("roles/", views.my_roles, name="my_roles"),
    path("activations/activate/<uuid:pk>/", views.activate, name="activate"),
    path(
        "activations/eligibilities/<uuid:pk>/extend/",
        views.eligibility_change,
        {"kind": "extend"},
        name="extend",
    ),
    path(
        "activations/eligibilities/<uuid:pk>/renew/",
        views.eligibility_change,
        {"kind": "renew"},
        name="renew",
    ),
    path("activations/activate/", views.activate_several, name="activate_several"),
    path(
        "activations/active-assignments/<uuid:pk>/extend/",
        views.active_change,
        {"kind": "extend"},
        name="extend_active",
    ),
    path(
        "activations/active-assignments/<uuid:pk>/renew/",
        views.active_change,
        {"kind": "renew"},
        name="renew_active",
    ),
    path("activations/requests/", views.my_requests, name="my_requests"),
    path("activations/approvals/", views.inbox, name="inbox"),
    path("activations/requests/<uuid:pk>/", views.request_detail, name="request_detail"),
    path("activations/requests/<uuid:pk>/decide/", views.decide, name="decide"),
    path("activations/requests/<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("activations/requests/<uuid:pk>/deactivate/", views.deactivate, name="deactivate"),
    path("activations/requests/<uuid:pk>/revoke/", views.revoke, name="revoke"),
]

# An activation's evidence sits with the audit log, at /audit/activations/<pk>/ (pim_portal.urls
# includes these under the namespace "evidence").
evidence_urlpatterns = [
    path("<uuid:pk>/", views.activation_evidence, name="activation"),
]
