"""audit.event_types lists every action the code writes, so that webhook subscriptions can
choose any of them and a typo is refused. This finds the literal ones in the code."""

import re
from pathlib import Path

from audit.event_types import ALL_EVENT_TYPES, EVENT_TYPES, event_type_matches, event_type_problem

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "accounts",
    "activations",
    "alerts",
    "api",
    "audit",
    "entra",
    "integrations",
    "reviews",
    "roles",
    "pim_portal",
]
LITERAL = re.compile(
    r"""action\s*=\s*["']([a-z_]+\.[a-z_]+)["']|_audit\([^,]+,\s*["']([a-z_]+\.[a-z_]+)["']"""
)


def written_actions() -> set[str]:
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            for match in LITERAL.finditer(path.read_text()):
                found.add(match.group(1) or match.group(2))
    return found


def test_every_literal_action_in_the_code_is_in_the_catalog():
    missing = sorted(written_actions() - ALL_EVENT_TYPES)
    assert not missing, f"Add these to audit/event_types.py: {missing}"


def test_the_scan_finds_actions_at_all():
    assert {
        "activation.requested",
        "role_settings.changed",
        "webhook.subscription_paused",
    } <= written_actions()


def test_patterns():
    assert event_type_problem("*") is None and event_type_problem("activation.*") is None
    assert event_type_problem("activation.granted") is None
    assert (
        event_type_problem("activation")
        and event_type_problem("activation.nope")
        and event_type_problem("x.*")
    )
    assert event_type_matches(["activation.*"], "activation.granted")
    assert not event_type_matches(["activation.*"], "activation_x.granted")
    assert not event_type_matches(["role.changed"], "role_settings.changed")
    assert all(names for names in EVENT_TYPES.values())
