"""The portal's URLs plus /bench/trivial/: a DRF view that authenticates nobody and reads no
database, the "trivial DRF view" the check endpoint is measured beside (bench/README.md)."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class Trivial(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"active": False, "until": None, "assignment": None})


urlpatterns = [
    path("bench/trivial/", Trivial.as_view()),
    path("", include("pim_portal.urls")),
]
