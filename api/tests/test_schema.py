"""The OpenAPI schema and the interactive docs."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_validates_without_a_warning(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert "/api/v1/check/" in target.read_text()


def test_the_schema_is_served_and_documents_every_operation_and_its_errors(anonymous):
    response = anonymous.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["info"]["title"] == "PIM Portal API"
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "sessionAuth"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_the_docs_page_runs_on_vendored_files_without_inline_script(anonymous):
    response = anonymous.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), "inline script"
    assert "<style" not in page and " style=" not in page
    sources = re.findall(r'(?:src|href)="/static/([^"]+)"', page)
    assert len(sources) == 6
    assert all(finders.find(source) for source in sources), sources
    assert 'data-schema-url="/api/schema/?format=json"' in page
