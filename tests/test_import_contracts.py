"""The app floors hold (import-linter, pyproject.toml), and the check would catch a breach:
a forbidden import added in a scratch copy of the code, even one hidden inside a function,
fails `lint-imports`."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def scratch_copy(tmp_path: Path) -> Path:
    """The root packages' Python files and pyproject.toml, nothing else."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=lambda folder, names: (
                [n for n in names if not (n.endswith(".py") or Path(folder, n).is_dir())] + ["__pycache__"]
            ),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own tool on our own copy
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_function(path: Path, body: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _sneaky():\n    {body}\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("tree"))


def test_the_code_as_it_is_keeps_every_contract(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("roles/selectors.py", "from activations import models  # noqa", "roles never imports activations"),
        ("audit/chain.py", "from accounts.models import User  # noqa", "audit imports no other app"),
        ("activations/services", "from entra import client  # noqa", "Nothing imports entra"),
        ("accounts/models.py", "import reviews.models  # noqa", "App floors"),
    ],
)
def test_a_forbidden_import_inside_a_function_breaks_the_build(tmp_path, module, forbidden, contract):
    tree = scratch_copy(tmp_path)
    target = tree / module
    add_function(target / "__init__.py" if target.is_dir() else target.with_suffix(".py"), forbidden)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
