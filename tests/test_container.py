"""The container files (Dockerfile, compose.yaml, .dockerignore): what README promises of them.
Docker cannot build images on the reference machine; these read the files."""

from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_image_is_built_from_the_runtime_lock_alone_and_runs_without_rights():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]

    assert len(stages) == 2  # build, then a runtime stage without pip's leftovers
    assert "--require-hashes -r requirements/runtime.txt" in dockerfile
    assert "requirements/dev.txt" not in dockerfile
    assert "collectstatic --no-input" in dockerfile
    assert "\nUSER pim\n" in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :]
    assert "/healthz" in healthcheck.split("\nCMD [", 1)[0]
    assert dockerfile.rstrip().endswith('CMD ["gunicorn", "-c", "gunicorn.conf.py"]')


def test_no_secret_and_no_development_file_goes_into_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert {".git", ".venv", "var", "secrets", "tests", "**/tests"} <= set(ignored)


def test_compose_runs_the_production_layout():
    services = compose()["services"]

    assert set(services) == {"postgres", "redis", "migrate", "web-1", "web-2", "worker", "beat", "mailpit"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web-1", "web-2", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        environment = services[name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert environment["DJANGO_SECRET_KEY_FILE"].startswith("/run/secrets/")
        assert "DJANGO_SECRET_KEY" not in environment and "PIM_AUDIT_CHAIN_KEY" not in environment
    assert services["beat"]["command"][:4] == ["celery", "-A", "pim_portal", "beat"]
    assert "healthcheck" not in services["web-1"]  # the image's: /healthz


def test_only_the_worker_holds_the_signing_key():
    services = compose()["services"]

    holders = [
        name for name, service in services.items() if "audit_signing_key" in service.get("secrets", [])
    ]
    assert holders == ["worker"]
    assert services["worker"]["environment"]["PIM_AUDIT_CHECKPOINT_FILE"].startswith("/checkpoints/")
