from django.urls import path

from . import people

app_name = "people"
urlpatterns = [
    path("", people.people_list, name="list"),
    path("invite/", people.person_invite, name="invite"),
    path("<int:pk>/", people.person_detail, name="detail"),
    path("<int:pk>/<slug:action>/", people.person_action, name="action"),
]
