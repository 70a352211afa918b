from django.urls import path

from . import views

app_name = "activations"
urlpatterns = [
    path("activate/<uuid:pk>/", views.activate, name="activate"),
    path("eligibilities/<uuid:pk>/extend/", views.eligibility_change, {"kind": "extend"}, name="extend"),
    path("eligibilities/<uuid:pk>/renew/", views.eligibility_change, {"kind": "renew"}, name="renew"),
    path("requests/", views.my_requests, name="my_requests"),
    path("approvals/", views.inbox, name="inbox"),
    path("requests/<uuid:pk>/", views.request_detail, name="request_detail"),
    path("requests/<uuid:pk>/decide/", views.decide, name="decide"),
    path("requests/<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("requests/<uuid:pk>/deactivate/", views.deactivate, name="deactivate"),
    path("requests/<uuid:pk>/revoke/", views.revoke, name="revoke"),
]

# An activation's evidence sits with the audit log, at /audit/activations/<pk>/ (pim_portal.urls
# includes these under the namespace "evidence").
evidence_urlpatterns = [
    path("<uuid:pk>/", views.activation_evidence, name="activation"),
]
