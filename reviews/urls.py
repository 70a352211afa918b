from django.urls import path

from . import views

app_name = "reviews"
urlpatterns = [
    # Reviewers
    path("mine/", views.my_reviews, name="my_reviews"),
    path("mine/decide/", views.items_decide, name="items_decide"),
    path("mine/accept-recommendations/", views.accept_recommendations, name="accept_recommendations"),
    path("items/<uuid:pk>/decide/", views.item_decide, name="item_decide"),
    path("items/<uuid:pk>/reset/", views.item_reset, name="item_reset"),
    # Administrators (and, read only, auditors)
    path("", views.definition_list, name="definition_list"),
    path("new/", views.definition_create, name="definition_create"),
    path("<uuid:pk>/", views.definition_detail, name="definition_detail"),
    path("<uuid:pk>/edit/", views.definition_edit, name="definition_edit"),
    path("runs/<uuid:pk>/", views.instance_detail, name="instance_detail"),
    path("runs/<uuid:pk>/end/", views.instance_end, name="instance_end"),
    path("runs/<uuid:pk>/apply/", views.instance_apply, name="instance_apply"),
    # Auditors
    path("runs/<uuid:pk>/report.csv", views.report_csv, name="report_csv"),
    path("runs/<uuid:pk>/report.xlsx", views.report_xlsx, name="report_xlsx"),
    path("<uuid:pk>/history.csv", views.history_csv, name="history_csv"),
    path("<uuid:pk>/history.xlsx", views.history_xlsx, name="history_xlsx"),
]
