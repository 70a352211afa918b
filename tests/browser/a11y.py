"""Accessibility checks for browser tests: axe-core (vendored from npm in vendor/axe-core, see
its README) run inside the page, and the page's width at a phone's 390 px."""

from pathlib import Path

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
PHONE = {"width": 390, "height": 844}
BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page, *, impacts=BLOCKING_IMPACTS) -> list[dict]:
    """The page's axe-core violations of the given impacts (WCAG 2.x A and AA rules and best
    practices). axe is evaluated through the DevTools protocol, so the portal's CSP (scripts
    from 'self' only) needs no exception for it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE + "\n;undefined")
    results = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation["impact"] in impacts]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:5]:
            why = node["any"][0]["message"] if node.get("any") else node.get("failureSummary", "")
            lines.append(f"  {node['html'][:160]} — {why}")
    return "\n".join(lines)


def scroll_width(page) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))
