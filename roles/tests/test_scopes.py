import pytest
from django.core.exceptions import ValidationError

from roles.scopes import scope_ancestors, scope_covers, scope_validate

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("scope", "kind"),
    [
        ("/", "entra"),
        (f"/administrativeUnits/{GUID}", "entra"),
        (f"/subscriptions/{GUID}", "azure"),
        (f"/subscriptions/{GUID}/resourceGroups/rg-web_01(prod)", "azure"),
        ("/providers/Microsoft.Management/managementGroups/corp", "azure"),
        ("/apps/payroll/eu", "app"),
        ("/", "m365"),
    ],
)
def test_well_formed_scopes_are_accepted(scope, kind):
    assert scope_validate(scope, kind=kind) == scope


@pytest.mark.parametrize(
    ("scope", "kind"),
    [
        ("", "entra"),
        ("subscriptions", "azure"),
        (f"/subscriptions/{GUID}/", "azure"),
        ("/subscriptions/not-a-guid", "azure"),
        (f"/subscriptions/{GUID}", "entra"),
        ("/administrativeUnits/xyz", "entra"),
        ("/apps/../etc", "app"),
        ("/apps//x", "app"),
        ("/apps/x\x00", "app"),
        ("/apps/" + "a" * 500, "app"),
        (f"/administrativeUnits/{GUID}", "m365"),
    ],
)
def test_bad_scopes_are_refused_with_a_clear_message(scope, kind):
    with pytest.raises(ValidationError) as error:
        scope_validate(scope, kind=kind)
    assert "scope" in error.value.messages[0].lower()


def test_scope_ancestors_and_cover():
    scope = f"/subscriptions/{GUID}/resourceGroups/web"
    assert scope_ancestors(scope) == [
        "/",
        "/subscriptions",
        f"/subscriptions/{GUID}",
        f"/subscriptions/{GUID}/resourceGroups",
        scope,
    ]
    assert scope_covers("/", scope)
    assert scope_covers(f"/subscriptions/{GUID}", scope)
    assert not scope_covers(f"/subscriptions/{GUID}/resourceGroups/we", scope)
