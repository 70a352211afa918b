import pytest
from django.core.exceptions import ValidationError

from roles.scopes import scope_ancestors, scope_covers, scope_normalised, scope_validate

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


# Paths whose reading could differ from their text: refused for every kind, never rewritten.
NOT_NORMAL = [
    "/apps/billing/../payroll",
    "/apps/billing/./payroll",
    "/apps/billing/..",
    "/apps/.",
    "/..",
    "/apps//billing",
    "//",
    "/apps/billing/",
]
# Characters no scope of any kind has (the kind's own message explains them in scope_validate).
ODD_CHARACTERS = [
    "/apps/billing/%2e%2e/payroll",
    "/apps/billing\\..\\payroll",
    "/apps/bil ling",
    "/apps/billing\n",
]


@pytest.mark.parametrize("scope", NOT_NORMAL)
@pytest.mark.parametrize("kind", ["entra", "azure", "m365", "app"])
def test_paths_not_in_normal_form_are_refused_for_every_kind(scope, kind):
    with pytest.raises(ValidationError) as error:
        scope_validate(scope, kind=kind)
    assert error.value.code == "scope_not_normal"


@pytest.mark.parametrize("scope", ODD_CHARACTERS)
def test_odd_characters_are_refused_even_at_the_end(scope):
    with pytest.raises(ValidationError):
        scope_validate(scope, kind="app")


@pytest.mark.parametrize("scope", NOT_NORMAL + ODD_CHARACTERS)
def test_the_kind_independent_rule_refuses_them_all(scope):
    with pytest.raises(ValidationError) as error:
        scope_normalised(scope)
    assert error.value.code == "scope_not_normal"


@pytest.mark.parametrize(
    "scope", ["/", "/apps/billing", "/apps/a..b/c.d", f"/subscriptions/{GUID}/resourceGroups/rg(1)"]
)
def test_the_kind_independent_rule_keeps_normal_paths_as_they_are(scope):
    assert scope_normalised(scope) == scope


def test_nothing_covers_a_path_with_dot_segments():
    assert not scope_covers("/apps/billing", "/apps/billing/../payroll")
    assert not scope_covers("/apps/billing", "/apps/billing/./x")
    assert not scope_covers("/", "/apps/billing/../payroll")
    assert not scope_covers("/apps/billing", "/apps/billing/")


def test_ancestors_of_a_path_not_in_normal_form_are_refused():
    with pytest.raises(ValidationError):
        scope_ancestors("/apps/billing/../payroll")
