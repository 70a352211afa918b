from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from . import errors, pages, step_up, views

router = SimpleRouter()
router.register("roles", views.RoleViewSet, basename="role")
router.register("me/eligibilities", views.EligibilityViewSet, basename="eligibility")
router.register("me/active-assignments", views.ActiveAssignmentViewSet, basename="active-assignment")
router.register("activation-requests", views.ActivationRequestViewSet, basename="activation-request")
router.register("approvals", views.ApprovalViewSet, basename="approval")
router.register("reviews/items", views.ReviewItemViewSet, basename="review-item")
router.register("alerts", views.AlertViewSet, basename="alert")

v1 = [
    *router.urls,
    path("audit-events/", views.AuditEventList.as_view(), name="audit-event-list"),
    path("audit-events/export/", views.AuditEventExport.as_view(), name="audit-event-export"),
    path("check/", views.CheckView.as_view(), name="check"),
    path("step-up/", step_up.StepUpView.as_view(), name="step-up"),
    path("step-up/passkey-options/", step_up.PasskeyOptionsView.as_view(), name="step-up-passkey-options"),
    re_path(r"^[\s\S]*$", errors.not_found),  # any path, line breaks (%0A) included
]

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", pages.docs, name="docs"),
    path("tokens/", pages.tokens, name="tokens"),
    path("tokens/new/", pages.token_create, name="token_create"),
    path("tokens/<uuid:pk>/revoke/", pages.token_revoke, name="token_revoke"),
]
