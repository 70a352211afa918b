"""The API docs in a real browser: Swagger UI from vendored files, under the portal's CSP."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_the_docs_page_shows_every_operation_with_no_csp_violation(new_page):
    page = new_page()
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto("/api/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/check/" in path for path in paths)
    assert page.evaluate("window.cspViolations") == []
    assert errors == []
