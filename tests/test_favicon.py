"""The favicon: a small vendored SVG, named by every portal page and the admin's, and
/favicon.ico for the rest (issue 12)."""

from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def test_the_favicon_is_a_small_static_svg():
    icon = Path(settings.BASE_DIR) / "static" / "favicon.svg"
    assert icon.stat().st_size < 2048
    assert icon.read_text().startswith("<svg")


def test_pages_name_the_favicon(client, admin, verified_client):
    sign_in_page = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in sign_in_page
    admin_page = verified_client(admin).get("/admin/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in admin_page


def test_favicon_ico_leads_to_the_svg(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    assert client.post("/favicon.ico").status_code == 405
