"""Administration in the portal, under /manage/roles/ (PIM Administrators while active)."""

from django.urls import path

from . import views_groups, views_manage

app_name = "manage_roles"
urlpatterns = [
    path("", views_manage.role_list, name="list"),
    path("search/", views_manage.principal_search, name="principal_search"),
    path("groups/govern/", views_groups.group_govern, name="group_govern"),
    path("groups/<int:group_pk>/ungovern/", views_groups.group_ungovern, name="group_ungovern"),
    path("<uuid:pk>/", views_manage.role_page, name="role"),
    path("<uuid:pk>/settings/", views_manage.role_settings_edit, name="settings"),
    path("<uuid:pk>/settings/who-approves/", views_manage.who_approves, name="who_approves"),
    path("<uuid:pk>/eligible/new/", views_manage.eligible_new, name="eligible_new"),
    path("<uuid:pk>/active/new/", views_manage.active_new, name="active_new"),
]
