"""`make test` collects pytest's testpaths (pyproject.toml): an app whose tests are missing from
that list would pass CI without ever running them."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_app_with_tests_is_in_the_testpaths():
    testpaths = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    )
    with_tests = {
        path.parent.parent.name
        for path in ROOT.glob("*/tests/__init__.py")
        if not path.parent.parent.name.startswith(".")
    }
    with_tests.add("tests")

    assert with_tests - testpaths == set()
